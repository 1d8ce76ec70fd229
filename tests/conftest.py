"""Suite-wide settings: one math thread per xdist worker.

``make test`` runs two workers on two cores; torch's default of one thread per core in
each worker oversubscribes the machine and slows the training tests several-fold.
Subprocesses inherit the setting unless they choose their own (``ssl-gym train`` does).
"""

from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
