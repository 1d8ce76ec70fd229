"""Records: one puzzle instance as every export format and scorer sees it.

Every adapter builds its rows from :func:`build_records`, and every scorer (verl,
EasyR1, TRL) judges a completion with :func:`score_completion`, so a puzzle exported
to any ecosystem earns exactly the reward the env gives for the same completion.

Design notes:

- Seeds. Record ``index`` of split ``split`` is the env reset with
  ``seed=record_seed(seed, split, index)`` (:func:`ssl_gym.seeds.record_seed`): one fixed
  permutation of ``(export seed, split, index)``, so no two records of any exports share
  a seed, and ``env.reset(seed=...)`` with the record's seed rebuilds its instance in any
  process. A mixture id's record is the mixture reset with that seed: the row holds the
  puzzle it drew, under that puzzle's id.
- Source images. With a folder, Hugging Face dataset or in-memory source, each source
  image belongs to one split by a hash of its bytes (:func:`split_source`): about
  ``test_fraction`` of the images are test images, and a test record only ever draws
  test images (negatives and distractors included). The procedural source makes a new
  picture from every seed, so there the seeds alone keep the splits apart.
- The scorer's payload (``info`` / ``extra_info``) is JSON: the env id, the config
  overrides, and the instance without its images (answer, solution, choices, pattern,
  metadata): everything ``Puzzle.verify`` reads. The scorer rebuilds the puzzle from the
  registry (``gym.spec(id).kwargs`` plus the overrides), never from code in the data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from ssl_gym.core import Instance, Puzzle, Verdict, check_float, check_int
from ssl_gym.envs import PuzzleEnv, make_puzzle_env, single_turn_id, unknown_id
from ssl_gym.envs.mixture import MixtureEnv
from ssl_gym.envs.registration import MIXTURE_ENTRY_POINT
from ssl_gym.images import (
    ArraySource,
    FolderSource,
    HFDatasetSource,
    ImageSource,
    PhotosSource,
    ProceduralSource,
    make_source,
)
from ssl_gym.puzzles import build_puzzle
from ssl_gym.seeds import RECORDS_PER_SPLIT, SPLITS, record_seed

"""The splits, in the order their codes (0, 1) are assigned."""

PAYLOAD_VERSION = 1
"""Bumped when the payload's layout changes."""

#: Keyword arguments of ``PuzzleEnv`` that are not puzzle settings.
_ENV_ONLY = frozenset({"image_source", "render_mode", "max_turns", "hint_cost"})

# --- splitting sources by image --------------------------------------------------------


def image_split(data: bytes, test_fraction: float) -> str:
    """The split a source image belongs to, from a SHA-256 hash of its bytes."""
    frac = int.from_bytes(hashlib.sha256(data).digest()[:8], "big") / 2**64
    return "test" if frac < test_fraction else "train"


class _FolderSplit(FolderSource):
    """A folder source restricted to the files of one split."""

    def __init__(self, parent: FolderSource, files: tuple[Path, ...], split: str) -> None:
        super().__init__(parent.root, parent.max_pixels)
        self._split_files = files
        self.spec = f"{parent.spec}#{split}"

    @property
    def files(self) -> tuple[Path, ...]:
        """The files of this split, sorted."""
        return self._split_files


class _HFSplit(HFDatasetSource):
    """A Hugging Face dataset source restricted to the rows of one split."""

    def __init__(self, parent: HFDatasetSource, rows: Sequence[int], split: str) -> None:
        super().__init__(parent.name, parent.split, parent.column)
        self._rows, self._parent = list(rows), parent
        self.spec = f"{parent.spec}#{split}"

    def _dataset(self) -> Any:
        if self._data is None:
            self._data = self._parent._dataset().select(self._rows)
            self.column = self._parent.column
        return self._data


def _hf_row_bytes(source: HFDatasetSource) -> list[bytes]:
    """The encoded bytes of every row's image (raw pixels where there is no file)."""
    import datasets

    data = source._dataset()
    column = source.column
    if isinstance(data.features[column], datasets.Image):
        cells = data.cast_column(column, datasets.Image(decode=False))[column]
        return [c["bytes"] or Path(c["path"]).read_bytes() for c in cells]
    return [np.ascontiguousarray(np.asarray(c)).tobytes() for c in data[column]]


def _check_nonempty(kept: Sequence[object], total: int, split: str, spec: str) -> None:
    if not kept:
        raise ValueError(
            f"none of the {total} images of {spec!r} fall in the {split} split; "
            "change test_fraction or use more images"
        )


def split_source(source: str | ImageSource, split: str, test_fraction: float) -> ImageSource:
    """The part of an image source whose images belong to ``split`` (see module notes).

    Args:
        source: A source spec or source.
        split: ``"train"`` or ``"test"``.
        test_fraction: Share of the source images that are test images, in ``[0, 1]``.

    Returns:
        The procedural source unchanged; for folder, dataset, photo and array sources, a
        source drawing only from the images of ``split``. Other sources are returned
        unchanged with a warning (their splits differ by seed only).

    Raises:
        ValueError: If ``split`` is unknown or it gets no image.
    """
    check_float("test_fraction", test_fraction, 0.0, 1.0)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    src = make_source(source)
    if isinstance(src, ProceduralSource) or getattr(src, SPLIT_MARK, None) == split:
        return src
    part = _split(src, split, test_fraction)
    return src if part is src else _mark(part, split)


SPLIT_MARK = "_ssl_gym_split"
"""Attribute naming the split a source was cut to (so workers can take it as it is)."""


def _mark(src: ImageSource, split: str) -> ImageSource:
    setattr(src, SPLIT_MARK, split)
    return src


def _split(src: ImageSource, split: str, test_fraction: float) -> ImageSource:
    if isinstance(src, FolderSource):
        files = src.files
        kept = tuple(f for f in files if image_split(f.read_bytes(), test_fraction) == split)
        _check_nonempty(kept, len(files), split, src.spec)
        return _FolderSplit(src, kept, split)
    if isinstance(src, HFDatasetSource):
        blobs = _hf_row_bytes(src)
        rows = [i for i, b in enumerate(blobs) if image_split(b, test_fraction) == split]
        _check_nonempty(rows, len(blobs), split, src.spec)
        return _HFSplit(src, rows, split)
    if isinstance(src, ArraySource | PhotosSource):
        images = src.images
        arrays = [im for im in images if image_split(im.tobytes(), test_fraction) == split]
        _check_nonempty(arrays, len(images), split, src.spec)
        return ArraySource(arrays)
    warnings.warn(
        f"cannot tell which images {src!r} holds; train and test differ by seed only",
        RuntimeWarning,
        stacklevel=3,
    )
    return src


# --- records ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Record:
    """One exported puzzle: what the model sees and what the scorer needs."""

    id: str
    """The env id (the ``data_source`` of verl)."""
    split: str
    index: int
    seed: int
    """``env.reset(seed=seed)`` (same overrides and source) rebuilds this instance."""
    images: tuple[np.ndarray, ...]
    prompt: str
    answer: str
    payload: dict[str, Any]
    """What the scorer needs, JSON-serialisable (see :func:`score_completion`)."""

    @property
    def info(self) -> str:
        """The payload as compact JSON text."""
        return dumps(self.payload)


def dumps(value: Any) -> str:
    """Compact, deterministic JSON; raises ``TypeError`` on values JSON cannot hold."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def check_exportable(env_id: str) -> Mapping[str, Any]:
    """The registry kwargs of a single-turn puzzle id; a clear error for anything else."""
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as err:
        raise ValueError(unknown_id(env_id)) from err
    kwargs = dict(spec.kwargs)
    if spec.entry_point != "ssl_gym.envs.puzzle_env:PuzzleEnv" or "family" not in kwargs:
        raise ValueError(f"{env_id!r} is not a puzzle id (nor a mixture); see `ssl-gym list`")
    if kwargs.get("max_turns", 1) != 1:
        single = single_turn_id(env_id)
        raise ValueError(
            f"{env_id!r} is multi-turn (hints come from the env between answers); a dataset "
            f"row holds one turn, so export {single!r} and play the -Hint id in an env"
        )
    return kwargs


def _check_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    bad = sorted(set(overrides) & _ENV_ONLY)
    if bad:
        raise ValueError(f"{bad} are env settings, not puzzle settings; pass them separately")
    out = dict(overrides)
    try:
        dumps(out)
    except (TypeError, ValueError) as err:
        raise ValueError(f"overrides must be JSON values: {err}") from err
    return out


def make_env(
    env_id: str, overrides: Mapping[str, Any] | None = None, image_source: Any = "procedural"
) -> PuzzleEnv:
    """The unwrapped env of a single-turn id with puzzle overrides (validated)."""
    check_exportable(env_id)
    return make_puzzle_env(env_id, image_source=image_source, **_check_overrides(overrides or {}))


#: Settings of a mixture itself; the others go to every puzzle it draws.
MIXTURE_KEYS = frozenset({"ids", "weights", "canvas"})


def is_mixture(env_id: str) -> bool:
    """Whether ``env_id`` is a registered mixture (``SSL/Mix-*``)."""
    spec = gym.registry.get(env_id)
    return spec is not None and spec.entry_point == MIXTURE_ENTRY_POINT


def mixture_settings(
    env_id: str, overrides: Mapping[str, Any] | None = None
) -> tuple[list[str], dict[str, Any]]:
    """A mixture's ids and the puzzle settings its puzzles share, checked for export.

    Raises:
        ValueError: If the mixture has no ids, or one of them cannot be exported.
    """
    over = _check_overrides(overrides or {})
    merged = {**gym.spec(env_id).kwargs, **over}
    ids = merged.get("ids")
    if not ids or isinstance(ids, str):
        raise ValueError(
            f'{env_id!r} needs its ids, e.g. --set \'ids=["SSL/Rotation-4way-v1", '
            f'"SSL/Jigsaw-2x2-v2"]\'; see `ssl-gym list`'
        )
    for task in ids:
        check_exportable(str(task))
    return [str(t) for t in ids], {k: v for k, v in merged.items() if k not in MIXTURE_KEYS}


class RecordMaker:
    """Builds the records of one split of an export, one index at a time, in any order.

    One env (a puzzle's, or a mixture's) on the split's part of the image source; record
    ``index`` is the env reset with :func:`record_seed`. Workers of a parallel export
    each hold one and build any index range.
    """

    def __init__(
        self,
        env_id: str,
        split: str,
        image_source: str | ImageSource = "procedural",
        test_fraction: float = 0.1,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        over = _check_overrides(overrides or {})
        source = split_source(image_source, split, test_fraction)
        self.env_id, self.split = env_id, split
        self.mixture: MixtureEnv | None = None
        if is_mixture(env_id):
            _, self.overrides = mixture_settings(env_id, over)
            env = gym.make(env_id, image_source=source, **over).unwrapped
            assert isinstance(env, MixtureEnv)
            self.mixture = env
        else:
            self.overrides = over
            self.env = make_env(env_id, over, source)

    def record(self, seed: int, index: int) -> Record:
        """Record ``index`` of the export seeded ``seed``."""
        s = record_seed(seed, self.split, index)
        extra: dict[str, Any] = {"split": self.split, "index": index, "seed": s}
        if self.mixture is not None:
            _, info = self.mixture.draw(seed=s)  # the reset's puzzle, no canvas drawn
            env, env_id = self.mixture.current, str(info["task_id"])
            extra["mixture"] = self.env_id
        else:
            self.env.reset(seed=s)
            env, env_id = self.env, self.env_id
        inst = None if env is None else env.instance
        if inst is None:
            raise RuntimeError("reset() produced no instance")
        payload = instance_payload(env_id, self.overrides, inst, **extra)
        return Record(env_id, self.split, index, s, inst.images, inst.prompt, inst.answer, payload)


def instance_payload(
    env_id: str, overrides: Mapping[str, Any], inst: Instance, **extra: Any
) -> dict[str, Any]:
    """The scorer's payload of an instance: id, overrides and the instance sans images."""
    return {
        "version": PAYLOAD_VERSION,
        "id": env_id,
        "overrides": dict(overrides),
        "family": inst.family,
        "question": inst.question,
        "prompt": inst.prompt,
        "answer": inst.answer,
        "solution": inst.solution,
        "choices": None if inst.choices is None else list(inst.choices),
        "pattern": inst.pattern,
        "metadata": dict(inst.metadata),
        **extra,
    }


def build_records(
    env_id: str,
    n: int,
    seed: int = 0,
    split: str = "train",
    image_source: str | ImageSource = "procedural",
    test_fraction: float = 0.1,
    overrides: Mapping[str, Any] | None = None,
    start: int = 0,
) -> Iterator[Record]:
    """Records ``start .. start + n - 1`` of one split, in index order (see module notes).

    Args:
        env_id: A registered single-turn id, e.g. ``"SSL/Rotation-4way-v1"``, or a
            mixture (``SSL/Mix-SSL4RL-v1``; each record is the puzzle its reset drew).
        n: Number of records.
        seed: The export's seed.
        split: ``"train"`` or ``"test"``.
        image_source: Source spec or source; split by image hash (see :func:`split_source`).
        test_fraction: Share of a finite source's images reserved for the test split.
        overrides: Puzzle config overrides (e.g. ``{"answer_format": "boxed"}``).
        start: Index of the first record.

    Yields:
        One :class:`Record` per index.

    Raises:
        ValueError: On a bad id, count, split or override.
    """
    check_int("start", start, 0, RECORDS_PER_SPLIT)
    check_int("n", n, 0, RECORDS_PER_SPLIT - start)
    maker = RecordMaker(env_id, split, image_source, test_fraction, overrides)
    for index in range(start, start + n):
        yield maker.record(seed, index)


# --- scoring ---------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _puzzle(env_id: str, overrides_json: str) -> Puzzle:
    kwargs = check_exportable(env_id)
    return build_puzzle(kwargs["family"], kwargs.get("preset"), **json.loads(overrides_json))


def load_payload(payload: str | Mapping[str, Any]) -> dict[str, Any]:
    """A payload from its JSON text or mapping, checked for the keys the scorer reads."""
    data = json.loads(payload) if isinstance(payload, str | bytes) else dict(payload)
    if not isinstance(data, dict):
        raise ValueError(f"an ssl_gym payload must be a JSON object, got {type(data).__name__}")
    missing = [k for k in ("id", "family", "answer", "solution") if k not in data]
    if missing:
        raise ValueError(
            f"not an ssl_gym payload (missing {missing}); rows must come from "
            "ssl_gym.adapters (ssl-gym export or to_dataset)"
        )
    return data


def rebuild(payload: str | Mapping[str, Any]) -> tuple[Puzzle, Instance]:
    """The puzzle (from the registry) and the image-less instance a payload describes."""
    data = load_payload(payload)
    puzzle = _puzzle(str(data["id"]), dumps(data.get("overrides") or {}))
    if puzzle.family != data["family"]:
        raise ValueError(f"payload family {data['family']!r} does not match {data['id']!r}")
    choices = data.get("choices")
    inst = Instance(
        family=data["family"],
        images=(),
        question=data.get("question", ""),
        prompt=data.get("prompt", ""),
        answer=data["answer"],
        solution=data["solution"],
        choices=None if choices is None else tuple(choices),
        pattern=data.get("pattern"),
        metadata=data.get("metadata") or {},
    )
    return puzzle, inst


def score_completion(
    completion: str, payload: str | Mapping[str, Any], data_source: str | None = None
) -> Verdict:
    """The env's verdict on ``completion`` for the instance a payload describes.

    Args:
        completion: The model's whole completion.
        payload: The record's payload (JSON text or mapping).
        data_source: The id the caller dispatched on; must match the payload's id.

    Returns:
        The verdict; ``verdict.reward`` equals the single-turn env's reward.

    Raises:
        ValueError: If the payload is not ours or names another id.
        TypeError: If ``completion`` is not a str.
    """
    data = load_payload(payload)
    if data_source is not None and data_source != data["id"]:
        raise ValueError(f"data_source {data_source!r} does not match the payload's {data['id']!r}")
    puzzle, inst = rebuild(data)
    return puzzle.verify(inst, completion)


# --- images ----------------------------------------------------------------------------


def image_placeholders(prompt: str, num_images: int, token: str = "<image>") -> str:
    """``prompt`` led by one ``token`` per image (verl's and EasyR1's layout)."""
    return token * num_images + prompt
