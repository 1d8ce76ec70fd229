r"""verl online: puzzles drawn on the fly as verl's dataset, and hinted play as its agent loop.

No parquet files: :class:`PuzzleDataset` builds every row from ``(id, seed, index)`` when
verl asks for it, in the layout of the offline export (:func:`ssl_gym.adapters.verl.verl_row`),
and :class:`PuzzleAgentLoop` plays each row's env, several turns for a ``-Hint`` id, on
verl's rollout servers. Launch (verl 0.9.1; ``+`` adds keys verl's config does not have)::

    python -m verl.trainer.main_ppo \
        data.custom_cls.path=pkg://ssl_gym.adapters.verl_online \
        data.custom_cls.name=PuzzleDataset \
        data.train_files=ssl_gym:train data.val_files=ssl_gym:validation \
        '+data.ssl_gym.ids=[SSL/Rotation-4way-Hint-v2,SSL/Jigsaw-2x2-Hint-v2]' \
        +data.ssl_gym.train_size=100000 +data.ssl_gym.seed=0 \
        data.filter_overlong_prompts=False \
        actor_rollout_ref.rollout.agent.default_agent_loop=ssl_gym_puzzle \
        actor_rollout_ref.rollout.response_length=2048 ...

- ``data.custom_cls.path`` must be the ``pkg://`` form: verl loads a file path under a
  made-up module name, and the agent loop's registry entry names this module.
- Every row carries ``agent_name="ssl_gym_puzzle"``, which selects :class:`PuzzleAgentLoop`
  per row; ``default_agent_loop`` does the same for rows without it. The loop is
  registered when verl loads the dataset class (its workers do, to find
  ``process_multi_modal_info``), so nothing else needs importing.
- ``data.filter_overlong_prompts=False``: rows are built on demand and cannot be filtered
  ahead (without torchvision, verl's filter cannot run anyway).
- The loop sets the reward itself (the env's), so no reward function is needed. With
  ``+data.ssl_gym.agent_name=null`` single-turn rows go to verl's default loop instead and
  are scored by ``reward.custom_reward_function.path=<ssl_gym/adapters/verl.py>``
  ``reward.custom_reward_function.name=compute_score`` (verl 0.9.1's key; the top-level
  ``custom_reward_function`` is its legacy spelling).
- ``rollout.response_length`` holds every turn after the first prompt: the answers and the
  env's replies (hint text, and hint images where a hint marks them); ``rollout.prompt_length``
  holds the first prompt. A hint with images adds them to the conversation, so the
  server's image limit (``rollout.limit_images``) must allow images x turns.

``data.ssl_gym`` settings:

- ``ids``: registered single-puzzle ids (single-turn or ``-Hint``); row ``i`` plays
  ``ids[i % len(ids)]``, as its episode ``j = i // len(ids)``;
- ``train_size``: rows of the train split, or ``null`` for endless (then set
  ``data.shuffle=False`` and ``trainer.total_training_steps``: every row is a new puzzle);
- ``val_size``: rows of the validation split (default 100 per id, as ``ssl-gym eval``);
- ``seed`` (default 0): train episode ``j`` of an id is the export's train record ``j``
  (:func:`ssl_gym.seeds.record_seed`); validation episode ``j`` is the ``j``-th held-out
  puzzle of :func:`ssl_gym.seeds.eval_seeds` (above every training seed, the puzzles of
  ``ssl-gym eval``), so the splits never share a puzzle;
- ``overrides`` (default ``{}``): puzzle settings for every id, e.g. ``{answer_format: boxed}``;
- ``image_source`` (default ``procedural``) and ``test_fraction`` (default 0.1): a finite
  source's images are split by hash as in the export (validation draws test images only);
- ``agent_name`` (default ``ssl_gym_puzzle``): the rows' agent loop.

Design notes:

- The dataset subclasses verl's ``RLHFDataset`` and replaces only where rows come from:
  its own ``__getitem__`` turns each row into ``raw_prompt`` (chat messages with the
  images) and the fields verl's ``collate_fn`` batches, as it does for parquet rows.
  Images are handed to the processor as they are (no ``qwen_vl_utils`` resize): the
  processor, here and on the rollout server, resizes them itself.
- The agent loop rebuilds the env from the row (``data_source``, and the payload's seed
  and overrides in ``extra_info``, through the Gymnasium registry; never code or pickles
  from the data) and checks that the reset reproduces the row's puzzle. Each turn's
  prompt goes through verl's Continuous Token builder (the processor's chat template), the
  reply is decoded as verl's reward manager decodes it and stepped in the env, and the
  env's reply is appended as the next user turn with response-mask 0: only the model's
  tokens are trained. An episode cut short by ``response_length`` is finished with empty
  answers, so it earns what the env gives for giving up, never more than answering.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from io import BytesIO
from typing import Any
from uuid import uuid4

import gymnasium as gym
import numpy as np
from PIL import Image
from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
    register,
)
from verl.utils.dataset.rl_dataset import RLHFDataset

from ssl_gym.adapters._records import (
    Record,
    _check_overrides,
    instance_payload,
    load_payload,
    split_source,
)
from ssl_gym.adapters.verl import verl_row
from ssl_gym.core import check_float, check_int
from ssl_gym.envs import PuzzleEnv, make_puzzle_env
from ssl_gym.envs.registration import ENTRY_POINT
from ssl_gym.images import ImageSource
from ssl_gym.seeds import RECORDS_PER_SPLIT, SEED_LIMIT, eval_seeds, record_seed

AGENT_NAME = "ssl_gym_puzzle"
"""The name :class:`PuzzleAgentLoop` has in verl's agent-loop registry."""

CONFIG_KEY = "ssl_gym"
"""The key of the settings in verl's data config (``data.ssl_gym``)."""

DATA_FILES = {"ssl_gym:train": "train", "ssl_gym:validation": "validation"}
"""The ``data.train_files`` / ``data.val_files`` values, and the split each names."""

IMAGE_SPLITS = {"train": "train", "validation": "test", "test": "test"}
"""The image split (:func:`ssl_gym.adapters._records.split_source`) of each row split."""

VAL_EPISODES_PER_ID = 100
"""Default validation episodes per id (those of ``ssl-gym eval``)."""

_KEYS = frozenset(
    {"ids", "train_size", "val_size", "seed", "overrides", "image_source", "test_fraction",
     "agent_name"}
)  # fmt: skip


def _plain(value: Any) -> Any:
    """An OmegaConf node (or anything) as plain Python containers."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf comes with verl
        return value
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


@dataclass(frozen=True)
class OnlineSettings:
    """The ``data.ssl_gym`` settings, checked (see the module notes)."""

    ids: tuple[str, ...]
    train_size: int | None
    val_size: int
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    image_source: str = "procedural"
    test_fraction: float = 0.1
    agent_name: str | None = AGENT_NAME

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> OnlineSettings:
        """The settings under ``config[CONFIG_KEY]`` (verl's data config).

        Raises:
            ValueError: On a missing key, an unknown key, or a bad value.
        """
        raw = _plain((config or {}).get(CONFIG_KEY))
        if not isinstance(raw, Mapping):
            raise ValueError(
                f"PuzzleDataset needs data.{CONFIG_KEY} (ids, train_size, ...); "
                f"add e.g. '+data.{CONFIG_KEY}.ids=[SSL/Rotation-4way-Hint-v2]'"
            )
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise ValueError(f"unknown data.{CONFIG_KEY} keys {unknown}; known: {sorted(_KEYS)}")
        ids = raw.get("ids")
        if isinstance(ids, str):
            ids = [ids]
        if not ids or not isinstance(ids, list | tuple) or not all(isinstance(i, str) for i in ids):
            raise ValueError(f"data.{CONFIG_KEY}.ids must be a non-empty list of env ids")
        if "train_size" not in raw:
            raise ValueError(
                f"data.{CONFIG_KEY}.train_size is required: rows per epoch, or null for endless"
            )
        train_size = raw["train_size"]
        if train_size is not None:
            check_int(f"data.{CONFIG_KEY}.train_size", train_size, 1, RECORDS_PER_SPLIT * len(ids))
        val_size = raw.get("val_size", VAL_EPISODES_PER_ID * len(ids))
        check_int(f"data.{CONFIG_KEY}.val_size", val_size, 1, SEED_LIMIT)
        seed = raw.get("seed", 0)
        check_int(f"data.{CONFIG_KEY}.seed", seed, 0)
        overrides = raw.get("overrides") or {}
        if not isinstance(overrides, Mapping):
            raise ValueError(f"data.{CONFIG_KEY}.overrides must be a mapping of puzzle settings")
        image_source = raw.get("image_source", "procedural")
        if not isinstance(image_source, str):
            raise ValueError(f"data.{CONFIG_KEY}.image_source must be a source spec string")
        test_fraction = raw.get("test_fraction", 0.1)
        check_float(f"data.{CONFIG_KEY}.test_fraction", test_fraction, 0.0, 1.0)
        agent_name = raw.get("agent_name", AGENT_NAME)
        if agent_name is not None and not isinstance(agent_name, str):
            raise ValueError(f"data.{CONFIG_KEY}.agent_name must be a string or null")
        return cls(
            ids=tuple(ids),
            train_size=None if train_size is None else int(train_size),
            val_size=int(val_size),
            seed=int(seed),
            overrides=_check_overrides(overrides),
            image_source=image_source,
            test_fraction=float(test_fraction),
            agent_name=agent_name,
        )


@lru_cache(maxsize=64)
def _split_source(spec: str, split: str, test_fraction: float) -> ImageSource:
    """The images of one split of a source (cached: splitting a folder reads every file)."""
    return split_source(spec, IMAGE_SPLITS[split], test_fraction)


def _make_env(
    env_id: str, overrides: Mapping[str, Any], spec: str, split: str, test_fraction: float
) -> PuzzleEnv:
    """A fresh env of a registered single-puzzle id, with a one-line error for a bad one."""
    spec_ = gym.registry.get(env_id)
    if spec_ is None:
        raise ValueError(f"{env_id!r} is not a registered env id; see `ssl-gym list`")
    if spec_.entry_point != ENTRY_POINT:
        raise ValueError(
            f"{env_id!r} is not a single-puzzle id (a mixture?); list its puzzle ids in "
            f"data.{CONFIG_KEY}.ids, the rows take turns"
        )
    try:
        return make_puzzle_env(
            env_id,
            image_source=_split_source(spec, split, test_fraction),
            **_check_overrides(overrides),
        )
    except ValueError as err:
        raise ValueError(f"ssl_gym row id {env_id!r}: {err}") from err


class OnlineRows:
    """The rows of one split, built on demand: ``rows[i]`` is row ``i`` in verl's layout.

    Stands where ``RLHFDataset`` keeps its parquet table (``dataframe``); each row has the
    fields of :func:`ssl_gym.adapters.verl.verl_row`, plus ``agent_name`` and, in
    ``extra_info``, what rebuilding the env needs besides the payload (``image_source``,
    ``test_fraction``).
    """

    def __init__(self, settings: OnlineSettings, split: str, max_samples: int = -1) -> None:
        """Check the settings (every id is built once) and size the split.

        Args:
            settings: The checked ``data.ssl_gym`` settings.
            split: ``"train"`` or ``"validation"``.
            max_samples: verl's ``train_max_samples`` / ``val_max_samples`` (``-1``: all).

        Raises:
            ValueError: On an unknown split, an id that is not a registered single puzzle,
                settings the puzzle does not take, or a hinted id without an agent loop.
        """
        if split not in ("train", "validation"):
            raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
        self.settings, self.split = settings, split
        size = settings.train_size if split == "train" else settings.val_size
        if size is None:
            size = RECORDS_PER_SPLIT * len(settings.ids)
        if max_samples is not None and max_samples > 0:
            size = min(size, int(max_samples))
        self.size = size
        self._envs: dict[str, PuzzleEnv] = {}
        for env_id in settings.ids:
            env = self._env(env_id)
            if env.max_turns != 1 and settings.agent_name is None:
                raise ValueError(
                    f"{env_id!r} is multi-turn: its rows need an agent loop that plays the "
                    f"env, e.g. data.{CONFIG_KEY}.agent_name={AGENT_NAME}"
                )
        self._val_seeds: dict[str, list[int]] = {}
        if split == "validation":
            per_id = math.ceil(size / len(settings.ids))
            self._val_seeds = {i: eval_seeds(i, per_id, settings.seed) for i in settings.ids}

    def _env(self, env_id: str) -> PuzzleEnv:
        if env_id not in self._envs:
            s = self.settings
            self._envs[env_id] = _make_env(
                env_id, s.overrides, s.image_source, self.split, s.test_fraction
            )
        return self._envs[env_id]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_envs"] = {}  # rebuilt on demand in the process that unpickles
        return state

    def __len__(self) -> int:
        return self.size

    def locate(self, index: int) -> tuple[str, int, int]:
        """``(id, episode, seed)`` of row ``index``: ids round-robin, seeds per split."""
        check_int("index", index, 0, self.size - 1)
        ids = self.settings.ids
        env_id, episode = ids[index % len(ids)], index // len(ids)
        if self.split == "train":
            seed = record_seed(self.settings.seed, "train", episode)
        else:
            seed = self._val_seeds[env_id][episode]
        return env_id, episode, seed

    def record(self, index: int) -> Record:
        """The record of row ``index`` (deterministic: a reset with its seed)."""
        env_id, episode, seed = self.locate(index)
        env = self._env(env_id)
        env.reset(seed=seed)
        inst = env.instance
        if inst is None:  # pragma: no cover - reset always draws one
            raise RuntimeError("reset() produced no instance")
        over = self.settings.overrides
        extra = {"split": self.split, "index": episode, "seed": seed}
        payload = instance_payload(env_id, over, inst, **extra)
        return Record(
            env_id, self.split, episode, seed, inst.images, inst.prompt, inst.answer, payload
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = verl_row(self.record(int(index)))
        row["extra_info"]["image_source"] = self.settings.image_source
        row["extra_info"]["test_fraction"] = self.settings.test_fraction
        if self.settings.agent_name is not None:
            row["agent_name"] = self.settings.agent_name
        return row


def _message_images(messages: Sequence[Mapping[str, Any]]) -> list[Image.Image]:
    """The images of chat messages' content parts, in order, as RGB PIL images."""
    images = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "image":
                continue
            image = part.get("image")
            if image is None and "bytes" in part:
                image = Image.open(BytesIO(part["bytes"]))
            if isinstance(image, np.ndarray):
                image = Image.fromarray(image)
            if not isinstance(image, Image.Image):
                raise TypeError(f"an image part must hold a PIL image, got {type(image).__name__}")
            images.append(image.convert("RGB"))
    return images


class PuzzleDataset(RLHFDataset):
    """verl's ``data.custom_cls``: puzzles built on the fly, one row per index.

    verl instantiates it as it does ``RLHFDataset``; ``data_files`` names the split
    (``ssl_gym:train`` or ``ssl_gym:validation``) and ``config.ssl_gym`` holds the settings
    (module notes). ``__getitem__`` is ``RLHFDataset``'s own, on rows from
    :class:`OnlineRows`: the same index always gives the same row.
    """

    def __init__(
        self,
        data_files: str | Sequence[str],
        tokenizer: Any,
        config: Any,
        processor: Any | None = None,
        max_samples: int = -1,
    ) -> None:
        """Build the split's rows; verl's signature (``create_rl_dataset`` passes all five).

        Raises:
            ValueError: On bad ``data_files`` or settings (one line naming the key), or
                without a vision-language processor.
        """
        if processor is None or getattr(processor, "image_processor", None) is None:
            raise ValueError(
                "PuzzleDataset needs a vision-language processor (puzzles are images); "
                "use a VL model in actor_rollout_ref.model.path"
            )
        if config.get("filter_overlong_prompts", False):
            raise ValueError(
                "set data.filter_overlong_prompts=False: PuzzleDataset builds rows on demand "
                "and cannot filter them ahead"
            )
        self.settings = OnlineSettings.from_config(config)
        files = [data_files] if isinstance(data_files, str) else [str(f) for f in data_files]
        endless = self.settings.train_size is None
        if endless and config.get("shuffle", False) and "ssl_gym:train" in files:
            raise ValueError(
                "an endless train split (train_size=null) cannot be shuffled: set data."
                f"shuffle=False (every row is a new puzzle) or data.{CONFIG_KEY}.train_size"
            )
        super().__init__(files, tokenizer, config, processor, max_samples)

    def _download(self, use_origin_parquet: bool = False) -> None:
        """Nothing to download: rows are built on demand."""

    def _read_files_and_tokenize(self) -> None:
        """Where ``RLHFDataset`` reads parquet: the split's :class:`OnlineRows`."""
        files = [str(f) for f in self.data_files]
        if len(files) != 1 or files[0] not in DATA_FILES:
            raise ValueError(
                f"PuzzleDataset data files must be one of {sorted(DATA_FILES)} "
                f"(data.train_files / data.val_files), got {files}"
            )
        self.split_name = DATA_FILES[files[0]]
        self.dataframe = OnlineRows(self.settings, self.split_name, self.max_samples)

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)  # the rows are light: keep them (RLHFDataset drops its table)

    def split(self, num_splits: int) -> list[PuzzleDataset]:
        """Not supported: an online split has no table to cut."""
        raise NotImplementedError("PuzzleDataset cannot be split; build one per worker")

    @classmethod
    def _process_multi_modal_info(
        cls, messages: list[dict[str, Any]], image_patch_size: Any, config: Any
    ) -> tuple[Any, Any, Any]:
        """The messages' images as they are (the processor resizes them); no videos or audio."""
        images = _message_images(messages)
        return (images or None), None, None

    @classmethod
    async def process_vision_info(
        cls, messages: list[dict[str, Any]], image_patch_size: Any, config: Any
    ) -> tuple[Any, Any]:
        """The messages' images (see :meth:`_process_multi_modal_info`)."""
        images, videos, _ = cls._process_multi_modal_info(messages, image_patch_size, config)
        return images, videos


# --- the agent loop --------------------------------------------------------------------


def _row_env(data_source: str, extra_info: Mapping[str, Any]) -> tuple[PuzzleEnv, int]:
    """The env of a row and its seed, from the registry and the row's JSON payload only."""
    if not isinstance(extra_info, Mapping) or "ssl_gym" not in extra_info:
        raise ValueError(
            f"row {data_source!r} has no ssl_gym payload in extra_info; "
            "rows must come from PuzzleDataset or `ssl-gym export --format verl`"
        )
    payload = load_payload(extra_info["ssl_gym"])
    if payload["id"] != data_source:
        raise ValueError(
            f"data_source {data_source!r} does not match the payload's {payload['id']!r}"
        )
    raw_seed: Any = payload.get("seed", extra_info.get("seed"))
    check_int("the row's seed", raw_seed, 0)
    seed = int(raw_seed)
    split = str(payload.get("split", extra_info.get("split", "train")))
    if split not in IMAGE_SPLITS:
        raise ValueError(f"row {data_source!r} has unknown split {split!r}")
    spec = extra_info.get("image_source") or "procedural"
    test_fraction = extra_info.get("test_fraction")
    env = _make_env(
        data_source,
        payload.get("overrides") or {},
        str(spec),
        split,
        0.1 if test_fraction is None else float(test_fraction),
    )
    env.reset(seed=seed)
    inst = env.instance
    if inst is None or inst.answer != payload["answer"] or inst.prompt != payload["prompt"]:
        raise ValueError(
            f"resetting {data_source!r} with seed {seed} does not give the row's puzzle; "
            "the row comes from other settings or another ssl_gym version"
        )
    return env, seed


def _changed(old: Sequence[np.ndarray], new: Sequence[np.ndarray]) -> bool:
    return len(old) != len(new) or any(
        not np.array_equal(a, b) for a, b in zip(old, new, strict=True)
    )


@dataclass
class _Trajectory:
    """Runtime state of one episode (tokens, mask, images, turns)."""

    token_ids: list[int]
    prompt_len: int
    mask: list[int] = field(default_factory=list)
    logprobs: list[float] | None = None
    images: list[Image.Image] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    routed_experts: Any = None
    preempted: int = 0


@register(AGENT_NAME)
class PuzzleAgentLoop(AgentLoopBase):
    """Plays a row's puzzle env on verl's rollout servers, one turn per answer.

    verl builds it per row (``hydra.utils.instantiate`` of its registry entry) with the
    trainer config, the server manager, the tokenizer and processor, the dataset class and
    the data config; ``run`` gets the row's fields. See the module notes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Take ``AgentLoopBase``'s arguments (``tools`` and other extras are ignored)."""
        super().__init__(*args, **kwargs)
        self.prompt_length = int(self.rollout_config.prompt_length)
        self.response_length = int(self.rollout_config.response_length)

    async def _generate(
        self, traj: _Trajectory, request_id: str, params: dict[str, Any], priority: int
    ) -> list[int]:
        budget = self.response_length - len(traj.mask)
        limit = params.get("max_tokens")
        params = {**params, "max_tokens": budget if limit is None else min(int(limit), budget)}
        output = await self.server_manager.generate(
            request_id=request_id,
            prompt_ids=traj.token_ids,
            sampling_params=params,
            image_data=traj.images or None,
            priority=priority,
        )
        traj.preempted += int(output.num_preempted or 0)
        if output.routed_experts is not None:
            traj.routed_experts = output.routed_experts
        merged, traj.mask, logprobs = await self.ct_merge_assistant_token(
            traj.token_ids,
            list(output.token_ids),
            traj.mask,
            traj.logprobs if (traj.logprobs or output.log_probs) else None,
            assistant_logprobs=output.log_probs or None,
        )
        traj.token_ids = merged.token_ids
        if logprobs is not None:
            traj.logprobs = logprobs
        return list(output.token_ids)

    async def _hint_images(self, arrays: Sequence[np.ndarray]) -> list[Image.Image]:
        """A hint's marked images, through the dataset class's image handling."""
        parts = [{"type": "image", "image": Image.fromarray(a)} for a in arrays]
        processed = await self.process_multi_modal_info([{"role": "user", "content": parts}])
        return list(processed.get("images") or [p["image"] for p in parts])

    async def _reply(self, traj: _Trajectory, text: str, images: list[Image.Image]) -> bool:
        """Append the env's reply as a user turn (mask 0); False if it does not fit."""
        content: list[dict[str, Any]] = [{"type": "image", "image": im} for im in images]
        content.append({"type": "text", "text": text})
        previous = list(traj.messages)
        updated = [*previous, {"role": "user", "content": content}]
        self._assert_mm_supported(bool(images))
        merged, mask, logprobs = await self.ct_merge_context_msg(
            previous, updated, traj.token_ids, traj.mask, traj.logprobs or None
        )
        if len(mask) >= self.response_length:
            return False
        traj.token_ids, traj.mask, traj.messages = merged.token_ids, mask, updated
        if traj.logprobs:
            traj.logprobs = logprobs or []
        traj.images.extend(images)
        traj.replies.append(text)
        return True

    async def run(
        self, sampling_params: dict[str, Any], priority: int = 0, **kwargs: Any
    ) -> AgentLoopOutput:
        """Play one episode of the row's env.

        Args:
            sampling_params: verl's sampling parameters (``max_tokens`` is capped at what is
                left of ``response_length`` each turn).
            priority: verl's per-sample scheduling priority.
            **kwargs: The row's fields: ``raw_prompt``, ``data_source``, ``extra_info``, ...

        Returns:
            The trajectory: the first prompt's tokens, then the answers (mask 1) and the
            env's replies (mask 0); ``reward_score`` is the env's episode reward.

        Raises:
            ValueError: If the row is not an ssl_gym row or does not match its env.
        """
        priority = int(priority)
        env, _ = _row_env(str(kwargs["data_source"]), kwargs.get("extra_info") or {})
        messages = list(kwargs["raw_prompt"])
        mm = await self.process_multi_modal_info(messages)
        images = list(mm.get("images") or [])
        self._assert_mm_supported(bool(images))
        prompt_ids = await self.ct_build_initial_tokens(messages, images=images)
        traj = _Trajectory(list(prompt_ids), len(prompt_ids), images=images, messages=messages)
        if self.rollout_config.get("full_determinism", False):
            request_id = f"det-{priority}"
        else:
            request_id = uuid4().hex
        shown = [np.asarray(im) for im in (env.instance.images if env.instance else ())]
        generate_s = 0.0
        loop = asyncio.get_running_loop()
        reward, done = 0.0, False
        info: dict[str, Any] = {}
        tokenizer: Any = self.tokenizer
        while not done and len(traj.mask) < self.response_length:
            start = loop.time()
            token_ids = await self._generate(traj, request_id, dict(sampling_params), priority)
            generate_s += loop.time() - start
            text = tokenizer.decode(token_ids, skip_special_tokens=True)
            traj.answers.append(text)
            traj.messages.append({"role": "assistant", "content": text})
            obs, reward, done, _, info = env.step(text)
            if done or len(traj.mask) >= self.response_length:
                break
            new = [np.asarray(im) for im in obs["images"]]
            hint_images = await self._hint_images(new) if _changed(shown, new) else []
            if not await self._reply(traj, str(obs["prompt"]), hint_images):
                break
            shown = new
        forfeited = 0
        while not done:  # cut short by response_length: the remaining answers are empty
            _, reward, done, _, info = env.step("")
            forfeited += 1
        response_ids = traj.token_ids[traj.prompt_len :]
        multi_modal_data = {"images": traj.images} if traj.images else {}
        output = AgentLoopOutput(
            prompt_ids=traj.token_ids[: traj.prompt_len],
            response_ids=response_ids[: self.response_length],
            response_mask=traj.mask[: self.response_length],
            response_logprobs=traj.logprobs[: self.response_length] if traj.logprobs else None,
            routed_experts=(
                traj.routed_experts[: traj.prompt_len + self.response_length]
                if traj.routed_experts is not None
                else None
            ),
            multi_modal_data=multi_modal_data,
            mm_processor_kwargs=self._get_mm_processor_kwargs(None),
            reward_score=float(reward),
            num_turns=len(traj.messages),
            metrics=AgentLoopMetrics(generate_sequences=generate_s, num_preempted=traj.preempted),
        )
        output.extra_fields.update(
            {
                "turn_scores": list(info.get("turn_scores", [])),
                "tool_rewards": [],
                "ssl_gym_answers": list(traj.answers),
                "ssl_gym_replies": list(traj.replies),
                "ssl_gym_forfeited": forfeited,
                "reward_extra_info": {"acc": float(reward)},
            }
        )
        return output


__all__ = [
    "AGENT_NAME",
    "CONFIG_KEY",
    "DATA_FILES",
    "OnlineRows",
    "OnlineSettings",
    "PuzzleAgentLoop",
    "PuzzleDataset",
]
