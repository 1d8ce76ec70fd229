"""Attribute docstrings of dataclass fields, read from the source (Python drops them)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools


def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` of the string right after each field, in ``cls`` and its bases.

    Whitespace is collapsed to single spaces; fields without a docstring are left out.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        node = ast.parse(inspect.cleandoc(inspect.getsource(klass))).body[0]
        for stmt, nxt in itertools.pairwise(getattr(node, "body", [])):
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                    docs[stmt.target.id] = " ".join(str(nxt.value.value).split())
    return docs
