"""``--set KEY=VALUE``: the one override syntax of the command line."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_set_option(parser: argparse.ArgumentParser, dest: str, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable) on ``parser``, collected as pairs in ``dest``."""
    parser.add_argument(
        "--set",
        dest=dest,
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help=f"{help} (value read as JSON if it can be)",
    )


def key_value(text: str) -> tuple[str, Any]:
    """An argparse type for ``--set KEY=VALUE``: the value read as JSON if it can be."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
