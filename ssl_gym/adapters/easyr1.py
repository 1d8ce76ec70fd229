r"""EasyR1: puzzles in EasyR1's dataset layout, and its batch reward function.

EasyR1 (hiyouga/EasyR1) reads a parquet with a text prompt, an answer and images
(``verl/utils/dataset.py``: ``prompt_key``, ``answer_key``, ``image_key``; the prompt
is split on ``<image>``; images are opened from ``{"bytes": ...}``), and hands each
reward function only ``{"response", "response_length", "ground_truth"}``, where
``ground_truth`` is the answer column (``verl/workers/reward/function.py``). So the
``answer`` column of an EasyR1 export is the scorer's JSON payload (env id, overrides,
solution, ...), and :func:`compute_score` returns ``{"overall", "format", "accuracy"}``
per input as EasyR1's reward functions do (``examples/reward_function/math.py``).

Export and train::

    ssl-gym export SSL/Rotation-4way-v1 --format easyr1 --n 10000 --out DIR
    python -m verl.trainer.main config=examples/config.yaml \
        data.train_files=DIR/train.parquet data.val_files=DIR/test.parquet \
        data.prompt_key=problem data.answer_key=answer data.image_key=images \
        data.format_prompt=null \
        worker.reward.reward_type=batch \
        worker.reward.reward_function=$(python -c \
            "import ssl_gym.adapters.easyr1 as m; print(m.__file__)"):compute_score

``data.format_prompt=null``: the prompt already carries the puzzle's answer-format
instruction (a second one would contradict it). ``overall`` is the env's reward for the
completion; ``accuracy`` the puzzle score; ``format`` 1 when the answer block is well
formed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, overload

import pyarrow as pa

from ssl_gym.adapters._records import Record, image_placeholders, score_completion
from ssl_gym.render import PNG_LEVEL, png_bytes

SCHEMA = pa.schema(
    [
        ("problem", pa.string()),
        ("answer", pa.string()),
        ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
    ]
)
"""The parquet schema of an EasyR1 export."""


def easyr1_row(record: Record, png_level: int = PNG_LEVEL) -> dict[str, Any]:
    """One record as a row of EasyR1's dataset (``answer`` holds the scorer's payload)."""
    return {
        "problem": image_placeholders(record.prompt, len(record.images)),
        "answer": record.info,
        "images": [{"bytes": png_bytes(im, png_level), "path": None} for im in record.images],
    }


def score_one(reward_input: Mapping[str, Any]) -> dict[str, float]:
    """Score one EasyR1 reward input: ``overall`` (the env's reward), ``format``, ``accuracy``."""
    missing = [k for k in ("response", "ground_truth") if k not in reward_input]
    if missing:
        raise ValueError(f"an EasyR1 reward input needs {missing}; got keys {sorted(reward_input)}")
    verdict = score_completion(str(reward_input["response"]), reward_input["ground_truth"])
    return {
        "overall": float(verdict.reward),
        "format": float(verdict.format_ok),
        "accuracy": float(verdict.score),
    }


@overload
def compute_score(reward_inputs: Mapping[str, Any]) -> dict[str, float]: ...
@overload
def compute_score(reward_inputs: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]: ...
def compute_score(
    reward_inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]],
) -> dict[str, float] | list[dict[str, float]]:
    """EasyR1's reward function (``reward_type=batch``; one dict also works: ``sequential``).

    Args:
        reward_inputs: EasyR1's reward inputs (``response``, ``ground_truth``, ...).

    Returns:
        One ``{"overall", "format", "accuracy"}`` per input (a dict for a dict).

    Raises:
        ValueError: If an input is not an ssl_gym row's.
    """
    if isinstance(reward_inputs, Mapping):
        return score_one(reward_inputs)
    return [score_one(x) for x in reward_inputs]
