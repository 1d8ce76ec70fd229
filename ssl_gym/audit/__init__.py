"""Shortcut audits: can a player that does not solve the puzzle beat chance?

Two levels. The weak audit (:mod:`ssl_gym.audit.weak`, ``ssl-gym audit``) checks the
oracle, the best constant answer and a linear probe on cheap image statistics. The
strong audit (:mod:`ssl_gym.audit.strong`, ``ssl-gym audit --strong``) adds probes that
look at one part of a puzzle alone, match statistics, read drawn geometry, and learn on
pixels with gradient boosting; it needs the ``audit`` extra (scikit-learn).
"""

from __future__ import annotations

from ssl_gym.audit.run import run_strong_audit
from ssl_gym.audit.strong import (
    ProbeResult,
    StrongResult,
    identity_error,
    strong_audit_id,
    strong_audit_puzzle,
)
from ssl_gym.audit.weak import (
    AuditResult,
    audit_id,
    audit_puzzle,
    blind_answer,
    blind_score,
    markdown_table,
    run_audit,
)

__all__ = [
    "AuditResult",
    "ProbeResult",
    "StrongResult",
    "audit_id",
    "audit_puzzle",
    "blind_answer",
    "blind_score",
    "identity_error",
    "markdown_table",
    "run_audit",
    "run_strong_audit",
    "strong_audit_id",
    "strong_audit_puzzle",
]
