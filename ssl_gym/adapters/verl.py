r"""verl: puzzles in verl's RLHF parquet layout, and the reward function that scores them.

Export with ``ssl-gym export ID --format verl --out DIR`` (or :func:`verl_row` per
record); train with verl's ``RLHFDataset`` and this module as the custom reward::

    python -m verl.trainer.main_ppo \
        data.train_files=DIR/train.parquet data.val_files=DIR/test.parquet \
        data.image_key=images \
        custom_reward_function.path=$(python -c \
            "import ssl_gym.adapters.verl as m; print(m.__file__)") \
        custom_reward_function.name=compute_score

Layout (verl's ``examples/data_preprocess/geo3k.py``; images as in
``verl/utils/dataset/vision_utils.py``, which opens ``{"bytes": ...}``):

- ``data_source``: the env id, e.g. ``SSL/Jigsaw-3x3-v2``; the scorer dispatches on it
  through the Gymnasium registry;
- ``prompt``: ``[{"role": "user", "content": "<image><image>...question"}]``, one
  ``<image>`` per image, before the text (verl splits the content on ``<image>``);
- ``images``: ``[{"bytes": PNG}, ...]``;
- ``ability``: ``"visual_ssl"``;
- ``reward_model``: ``{"style": "rule", "ground_truth": answer text}``;
- ``extra_info``: ``{"split", "index", "seed", "ssl_gym": JSON payload}``; the payload is
  what the scorer needs (config overrides, solution, choices, metadata), so the score
  equals the env's reward for the same completion without the images.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from ssl_gym.adapters._records import (
    Record,
    image_placeholders,
    load_payload,
    score_completion,
)
from ssl_gym.render import PNG_LEVEL, png_bytes

ABILITY = "visual_ssl"

SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        (
            "extra_info",
            pa.struct(
                [
                    ("split", pa.string()),
                    ("index", pa.int64()),
                    ("seed", pa.int64()),
                    ("ssl_gym", pa.string()),
                ]
            ),
        ),
    ]
)
"""The parquet schema of a verl export."""


def verl_row(record: Record, png_level: int = PNG_LEVEL) -> dict[str, Any]:
    """One record as a row of verl's RLHF dataset."""
    content = image_placeholders(record.prompt, len(record.images))
    return {
        "data_source": record.id,
        "prompt": [{"role": "user", "content": content}],
        "images": [{"bytes": png_bytes(im, png_level), "path": None} for im in record.images],
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": record.answer},
        "extra_info": {
            "split": record.split,
            "index": record.index,
            "seed": record.seed,
            "ssl_gym": record.info,
        },
    }


def _payload(extra_info: Mapping[str, Any] | str | None) -> Mapping[str, Any] | str:
    if extra_info is None:
        raise ValueError(
            "compute_score needs the row's extra_info (it holds the ssl_gym payload); "
            "export with `ssl-gym export ID --format verl`"
        )
    if isinstance(extra_info, Mapping) and "ssl_gym" in extra_info:
        return extra_info["ssl_gym"]
    return extra_info


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str | None = None,
    extra_info: Mapping[str, Any] | str | None = None,
    **kwargs: Any,
) -> float:
    """The custom reward function of verl: the env's reward for ``solution_str``.

    Args:
        data_source: The row's env id (dispatch goes through the Gymnasium registry).
        solution_str: The decoded completion.
        ground_truth: ``reward_model.ground_truth``; checked against the payload's answer.
        extra_info: The row's ``extra_info`` (or the payload itself, as JSON or a dict).
        **kwargs: Whatever else verl passes (ignored).

    Returns:
        The reward the single-turn env gives for the same completion.

    Raises:
        ValueError: If the row is not an ssl_gym row, or its parts disagree.
    """
    payload = load_payload(_payload(extra_info))
    if ground_truth is not None and str(ground_truth) != payload["answer"]:
        raise ValueError(
            f"ground_truth {ground_truth!r} is not the payload's answer {payload['answer']!r}; "
            "the row's reward_model and extra_info come from different puzzles"
        )
    return float(score_completion(str(solution_str), payload, data_source).reward)
