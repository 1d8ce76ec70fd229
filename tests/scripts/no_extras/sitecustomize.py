"""Make Python behave as if no extra of ssl_gym were installed.

Put this folder first on ``PYTHONPATH``: Python imports ``sitecustomize`` at start-up,
and from then on every optional dependency of ssl_gym is unimportable, so what runs is
what a bare ``pip install ssl-gym`` (numpy, pillow, gymnasium, rich) can do::

    PYTHONPATH=tests/scripts/no_extras python -m ssl_gym.cli list
"""

from __future__ import annotations

import importlib.abc
import sys

BLOCKED = frozenset(
    {
        "torch", "transformers", "tokenizers", "safetensors", "peft", "matplotlib",
        "datasets", "pyarrow", "pettingzoo", "ray", "trl", "verifiers", "vllm",
        "skimage", "sklearn", "scipy", "mkdocs", "pandas", "agents",
    }
)  # fmt: skip


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: no extras)")
        return None


sys.meta_path.insert(0, _Blocker())
