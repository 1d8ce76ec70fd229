"""TRL: ``GRPOTrainer`` plays the ``-Hint`` ids multi-turn through a ``rollout_func``.

    from trl import GRPOConfig, GRPOTrainer
    from ssl_gym.adapters.trl_env import HintRollout, episode_reward, to_hint_dataset

    ds = to_hint_dataset("SSL/Rotation-4way-Hint-v2", n=1000)
    trainer = GRPOTrainer(model=..., reward_funcs=[episode_reward], train_dataset=ds,
                          rollout_func=HintRollout(max_turn_tokens=64),
                          args=GRPOConfig(max_completion_length=1024, ...))

## How an episode runs

* Row ``i`` of :func:`to_hint_dataset` is row ``i`` of ``to_dataset`` of the single-turn
  id (same seed, images and prompt: the ``-Hint`` env's first observation), and its user
  message carries the episode's key under ``"ssl_gym"`` (id, seed, overrides, image
  source): TRL 1.16 hands a ``rollout_func`` the prompts only (``rollout_func(prompts,
  trainer)``, ``trl/trainer/grpo_trainer.py`` line 2210), so the key rides in the prompt.
  Chat templates read a message's ``role`` and ``content`` only; the model never sees it.
* :class:`HintRollout` resets one :class:`PuzzleEpisode` per completion from its row's
  key, generates the model's answer with the trainer's own generation (its
  ``_tokenize_prompts`` and ``_generate_single_turn``: transformers or vLLM, with the run's
  sampling settings), steps the env with the decoded answer and, while the episode goes
  on, appends the env's reply as the next user turn and generates again. The completion
  TRL trains on is every turn's tokens: the model's answers (``env_mask`` 1, trained) and
  the env's replies in the chat template's user turn (``env_mask`` 0, not trained).
* The reward is the episode's: the sum of the env's step rewards, i.e. the last step's
  (hint cost included). :func:`episode_reward` reads it from the ``ssl_gym_episode``
  field the rollout returns (one :class:`Episode` per completion); TRL logs it as
  ``rewards/ssl_gym_reward/mean``, and the mean number of answers as ``ssl_gym/turns``.
* ``GRPOConfig.max_completion_length`` bounds a whole episode (answers and replies);
  ``max_turn_tokens`` bounds one answer. When the env's next reply would not fit, the
  episode is closed by playing empty answers for its remaining turns (each a wrong
  answer, as in the env), so the reward is still the env's (``Episode.forced``).

## Limitation: hint images

The ``-Hint`` envs mark the images of later turns (a line, an arrow), but TRL 1.16's
``rollout_func`` path cannot show them: its forward pass takes the pixel values of the
dataset row's images only (``images = None`` for the rollout path, line 2218, then
``images = dataset_images``, line 2438, and the processor call on the first prompt,
line 2518), so image tokens of later turns would have no pixels. Later turns pass the env's
text reply only; :attr:`Episode.image_hints` counts the replies whose new images the model
did not see. TRL's other interface, ``environment_factory`` (whose tool results may hold
images, line 2016), is tool calling: it needs a chat template that renders tool calls
(checked at line 650; Idefics3's does not) and a model that emits them, and the env's reply
would come back as a tool result rather than a user turn.

The module imports no TRL; it duck-types the trainer it is handed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import datasets
import gymnasium as gym
import numpy as np

from ssl_gym.adapters._records import dumps, split_source
from ssl_gym.adapters.datasets import features, to_dataset
from ssl_gym.envs import make_puzzle_env, single_turn_id, unknown_id
from ssl_gym.envs.registration import ENTRY_POINT as PUZZLE_ENTRY_POINT
from ssl_gym.images import ImageSource, make_source

KEY = "ssl_gym"
"""The user message field holding an episode's key (JSON) in :func:`to_hint_dataset` rows."""

EPISODE_FIELD = "ssl_gym_episode"
"""The rollout's extra field (one :class:`Episode` per completion) reward functions get."""

_TRAINER_NEEDS = ("_tokenize_prompts", "_generate_single_turn", "processing_class")


@dataclass
class Episode:
    """One played episode: what the model said, what the env replied, what it paid.

    Attributes:
        env_id: The env id played.
        seed: The reset seed.
        prompt: The first observation's prompt text.
        replies: Every answer stepped, in order (closing empty answers included).
        feedback: The env's reply text after each answer but the last.
        rewards: ``env.step``'s reward for each answer.
        forced: Trailing empty answers played because the token budget ran out.
        image_hints: Env replies that brought new images (not shown to the model by
            :class:`HintRollout`, see the module notes).
    """

    env_id: str
    seed: int
    prompt: str
    replies: list[str] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    forced: int = 0
    image_hints: int = 0

    @property
    def reward(self) -> float:
        """The episode's reward: the sum of the step rewards (the last step's)."""
        return float(sum(self.rewards))

    @property
    def turns(self) -> int:
        """Answers the model gave (the forced empty answers not counted)."""
        return len(self.replies) - self.forced

    def messages(self) -> list[dict[str, str]]:
        """The episode as chat messages (text only): prompt, answer, reply, answer, ..."""
        out = [{"role": "user", "content": self.prompt}]
        for i, reply in enumerate(self.replies):
            out.append({"role": "assistant", "content": reply})
            if i < len(self.feedback):
                out.append({"role": "user", "content": self.feedback[i]})
        return out


def check_puzzle_id(env_id: str) -> None:
    """Check that ``env_id`` is a registered single-puzzle id (one-line ``ValueError``)."""
    spec = gym.registry.get(env_id)
    if spec is None:
        raise ValueError(unknown_id(env_id))
    if spec.entry_point != PUZZLE_ENTRY_POINT or "family" not in spec.kwargs:
        raise ValueError(f"{env_id!r} is not a single-puzzle id; play its puzzles' ids one by one")


class PuzzleEpisode:
    """An ssl_gym env played one episode at a time, its turns recorded as an :class:`Episode`.

    Args:
        env_id: A registered single-puzzle id; the ``-Hint`` ids play several turns.
        overrides: Puzzle config overrides, e.g. ``{"answer_format": "plain"}``.
        image_source: Image source spec or source.

    Raises:
        ValueError: If the id is unknown or not a single puzzle, or an override is bad.
    """

    def __init__(
        self,
        env_id: str,
        overrides: Mapping[str, Any] | None = None,
        image_source: str | ImageSource = "procedural",
    ) -> None:
        check_puzzle_id(env_id)
        self.env_id = env_id
        self.env = make_puzzle_env(env_id, image_source=image_source, **dict(overrides or {}))
        self._episode: Episode | None = None
        self._images: tuple[np.ndarray, ...] = ()
        self._done = True

    def reset(self, seed: int) -> tuple[tuple[np.ndarray, ...], str]:
        """Start the episode of ``seed``; returns the first observation's images and prompt."""
        obs, _ = self.env.reset(seed=seed)
        self._episode = Episode(self.env_id, int(seed), obs["prompt"])
        self._images, self._done = obs["images"], False
        return obs["images"], obs["prompt"]

    def step(self, reply: str) -> str | None:
        """Step the env with ``reply``; the env's reply text, or ``None`` once it ended.

        Raises:
            RuntimeError: If no episode is under way.
        """
        episode = self._require()
        obs, reward, terminated, truncated, _ = self.env.step(reply)
        episode.replies.append(reply)
        episode.rewards.append(float(reward))
        if terminated or truncated:
            self._done = True
            return None
        images = obs["images"]
        if any(not np.array_equal(a, b) for a, b in zip(images, self._images, strict=True)):
            episode.image_hints += 1
        self._images = images
        episode.feedback.append(obs["prompt"])
        return str(obs["prompt"])

    def close(self) -> None:
        """End the episode by playing empty answers for the turns left (if any)."""
        while not self._done:
            self.step("")
            self._require().forced += 1

    @property
    def done(self) -> bool:
        """Whether the current episode has ended (``True`` before the first reset)."""
        return self._done

    @property
    def episode(self) -> Episode:
        """The current episode's record.

        Raises:
            RuntimeError: Before the first reset.
        """
        return self._require()

    def _require(self) -> Episode:
        if self._episode is None:
            raise RuntimeError("reset() the episode first")
        return self._episode


def to_hint_dataset(
    env_id: str,
    n: int,
    seed: int = 0,
    split: str = "train",
    image_source: str | ImageSource = "procedural",
    test_fraction: float = 0.1,
    overrides: Mapping[str, Any] | None = None,
) -> datasets.Dataset:
    """``n`` episodes of an id as a dataset for :class:`HintRollout` (see the module notes).

    The rows of ``to_dataset(single_turn_id(env_id), ...)`` with the same arguments, with
    ``data_source`` set to ``env_id`` and the episode's key in the user message's
    ``"ssl_gym"`` field.

    Args:
        env_id: A registered single-puzzle id, e.g. ``"SSL/Rotation-4way-Hint-v2"``.
        n: Number of rows.
        seed: Seed of the export (as ``to_dataset``).
        split: ``"train"`` or ``"test"``.
        image_source: Image source spec (the key stores its spec, so in-memory sources
            cannot be replayed).
        test_fraction: Share of a finite source's images reserved for ``"test"``.
        overrides: Puzzle config overrides, e.g. ``{"answer_format": "plain"}``.

    Returns:
        The dataset (columns as ``to_dataset``'s).

    Raises:
        ValueError: On a bad id, count, split, override or source.
    """
    over = dict(overrides or {})
    check_puzzle_id(env_id)
    ds = to_dataset(single_turn_id(env_id), n, seed, split, image_source, test_fraction, over)
    spec = make_source(image_source).spec
    feats = features()
    text = datasets.Value("string")
    feats["prompt"] = datasets.List({"role": text, "content": text, KEY: text})

    def add_key(prompt: list[dict[str, Any]], info: str) -> dict[str, Any]:
        key = {
            "id": env_id,
            "seed": json.loads(info)["seed"],
            "overrides": over,
            "image_source": spec,
            "split": split,
            "test_fraction": test_fraction,
        }
        messages = [{**m, KEY: dumps(key) if m["role"] == "user" else None} for m in prompt]
        return {"prompt": messages, "data_source": env_id}

    return ds.map(add_key, input_columns=["prompt", "info"], features=feats)


def row_key(prompt: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The episode key a prompt's user message carries (see :func:`to_hint_dataset`).

    Raises:
        ValueError: If no message carries one.
    """
    for message in prompt:
        key = message.get(KEY) if isinstance(message, Mapping) else None
        if key:
            return dict(json.loads(key))
    raise ValueError(
        "a prompt without an ssl_gym episode key reached the rollout; build the dataset "
        "with ssl_gym.adapters.trl_env.to_hint_dataset"
    )


def prompt_images(prompt: Sequence[Mapping[str, Any]]) -> list[np.ndarray]:
    """The images in a prompt's content parts (``{"type": "image", "image": ...}``), as arrays."""
    out = []
    for message in prompt:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and part.get("type") == "image" and "image" in part:
                    out.append(np.asarray(part["image"].convert("RGB")))
    return out


def _user_text(prompt: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for message in prompt:
        content = message.get("content")
        if message.get("role") != "user" or content is None:
            continue
        if isinstance(content, str):
            parts.append(content)
        else:
            parts += [p.get("text", "") for p in content if p.get("type") == "text"]
    return "".join(parts)


class HintRollout:
    """A TRL ``rollout_func`` that plays each completion as an ssl_gym episode.

    ``GRPOTrainer(..., rollout_func=HintRollout(), reward_funcs=[episode_reward])`` on
    rows of :func:`to_hint_dataset`; see the module notes for the token layout and limits.

    Args:
        max_turn_tokens: The most tokens one answer may take (``None``: the rest of
            ``max_completion_length``).
    """

    def __init__(self, max_turn_tokens: int | None = None) -> None:
        if max_turn_tokens is not None and max_turn_tokens < 1:
            raise ValueError(f"max_turn_tokens must be >= 1 or None, got {max_turn_tokens}")
        self.max_turn_tokens = max_turn_tokens
        self._pool: dict[str, list[PuzzleEpisode]] = {}
        self._sources: dict[str, ImageSource] = {}

    def __call__(self, prompts: list[list[dict[str, Any]]], trainer: Any) -> dict[str, Any]:
        """Play one episode per prompt; TRL's rollout output (see the module notes).

        Args:
            prompts: The process's prompts (TRL repeats each row ``num_generations``
                times), conversational, images in the content parts.
            trainer: The ``GRPOTrainer``.

        Returns:
            ``prompt_ids``, ``completion_ids``, ``logprobs`` (``None`` unless the backend
            gives them), ``env_mask`` and ``ssl_gym_episode``.

        Raises:
            ValueError: On rows that are not :func:`to_hint_dataset` rows, or whose images
                are not the env's first observation.
            TypeError: If ``trainer`` is not TRL's ``GRPOTrainer``.
        """
        missing = [name for name in _TRAINER_NEEDS if not hasattr(trainer, name)]
        if missing:
            raise TypeError(f"HintRollout needs TRL's GRPOTrainer (1.16); trainer lacks {missing}")
        games = self._start(prompts)
        tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
        eos = tokenizer.eos_token_id
        budget = int(trainer.max_completion_length)
        prompt_ids, _, _ = trainer._tokenize_prompts(prompts)
        prompt_ids = [list(ids) for ids in prompt_ids]
        completion: list[list[int]] = [[] for _ in prompts]
        env_mask: list[list[int]] = [[] for _ in prompts]
        logprobs: list[list[float]] | None = [[] for _ in prompts]
        active = list(range(len(prompts)))
        while active:
            limits = [budget - len(completion[i]) for i in active]
            if self.max_turn_tokens is not None:
                limits = [min(lim, self.max_turn_tokens) for lim in limits]
            _, images, fields = trainer._tokenize_prompts([prompts[i] for i in active])
            contexts = [prompt_ids[i] + completion[i] for i in active]
            with _max_new_tokens(trainer, max(limits)):
                new_ids, new_logps = trainer._generate_single_turn(contexts, images, fields, 1)
            still = []
            for k, i in enumerate(active):
                ids = list(new_ids[k])[: limits[k]]
                completion[i] += ids
                env_mask[i] += [1] * len(ids)
                if logprobs is not None and new_logps is not None:
                    logprobs[i] += list(new_logps[k])[: len(ids)]
                else:
                    logprobs = None
                reply = tokenizer.decode(ids, skip_special_tokens=True)
                text = games[i].step(reply)
                if text is None:
                    continue
                suffix = _reply_ids(trainer, text)
                if not ids or ids[-1] != eos:
                    suffix = [eos, *suffix]  # close the truncated answer's turn
                if len(completion[i]) + len(suffix) + 1 > budget:
                    games[i].close()  # no room for another answer
                    continue
                completion[i] += suffix
                env_mask[i] += [0] * len(suffix)
                if logprobs is not None:
                    logprobs[i] += [0.0] * len(suffix)
                still.append(i)
            active = still
        return {
            "prompt_ids": prompt_ids,
            "completion_ids": completion,
            "logprobs": logprobs,
            "env_mask": env_mask,
            EPISODE_FIELD: [game.episode for game in games],
        }

    def _start(self, prompts: Sequence[Sequence[Mapping[str, Any]]]) -> list[PuzzleEpisode]:
        games: list[PuzzleEpisode] = []
        cursor: dict[str, int] = {}
        for prompt in prompts:
            key = row_key(prompt)
            env_key = dumps({k: v for k, v in key.items() if k != "seed"})
            pool = self._pool.setdefault(env_key, [])
            index = cursor.get(env_key, 0)
            if index == len(pool):
                pool.append(PuzzleEpisode(key["id"], key["overrides"], self._source(key)))
            cursor[env_key] = index + 1
            game = pool[index]
            images, text = game.reset(int(key["seed"]))
            shown = prompt_images(prompt)
            same = len(shown) == len(images) and all(
                np.array_equal(a, b) for a, b in zip(shown, images, strict=True)
            )
            if not same or text not in _user_text(prompt):
                raise ValueError(
                    f"the row is not {key['id']}'s first observation for seed "
                    f"{key['seed']}; build the rows with to_hint_dataset"
                )
            games.append(game)
        return games

    def _source(self, key: Mapping[str, Any]) -> ImageSource:
        name = dumps([key["image_source"], key["split"], key["test_fraction"]])
        if name not in self._sources:
            spec = str(key["image_source"])
            self._sources[name] = split_source(spec, str(key["split"]), float(key["test_fraction"]))
        return self._sources[name]


@contextmanager
def _max_new_tokens(trainer: Any, limit: int) -> Iterator[None]:
    """Cap the trainer's transformers generation at ``limit`` new tokens meanwhile."""
    config = getattr(trainer, "generation_config", None)
    if config is None:
        yield
        return
    before = config.max_new_tokens
    config.max_new_tokens = limit
    try:
        yield
    finally:
        config.max_new_tokens = before


def _reply_ids(trainer: Any, text: str) -> list[int]:
    """The tokens that follow an assistant turn: the user turn ``text``, the next prompt.

    As TRL's ``_get_tool_suffix_ids``: a dummy exchange rendered with and without the user
    turn, the prefix cut after its last EOS.
    """
    processing = trainer.processing_class
    tokenizer = getattr(processing, "tokenizer", processing)
    is_vlm = tokenizer is not processing

    def message(role: str, content: str) -> dict[str, Any]:
        return {"role": role, "content": [{"type": "text", "text": content}] if is_vlm else content}

    head = [message("user", "dummy"), message("assistant", "dummy")]
    kwargs = {
        "tokenize": True,
        "return_dict": False,
        "chat_template": getattr(trainer, "chat_template", None),
        **(getattr(trainer, "chat_template_kwargs", None) or {}),
    }
    prefix = processing.apply_chat_template(head, add_generation_prompt=False, **kwargs)
    full = processing.apply_chat_template(
        [*head, message("user", text)], add_generation_prompt=True, **kwargs
    )
    if prefix and isinstance(prefix[0], list):  # processors batch a single conversation
        prefix, full = prefix[0], full[0]
    ends = [i for i, t in enumerate(prefix) if t == tokenizer.eos_token_id]
    if ends:
        prefix = prefix[: ends[-1] + 1]
    if list(full[: len(prefix)]) != list(prefix):
        raise ValueError("the chat template does not render a user turn after the assistant's")
    return list(full[len(prefix) :])


def episode_reward(
    prompts: Sequence[Any] | None = None,
    completions: Sequence[Any] = (),
    ssl_gym_episode: Sequence[Episode] | None = None,
    log_metric: Any = None,
    **kwargs: Any,
) -> list[float]:
    """TRL reward function ``ssl_gym_reward``: each episode's reward, from :class:`HintRollout`.

    Args:
        prompts: Ignored.
        completions: The completions (one per episode).
        ssl_gym_episode: The rollout's episodes.
        log_metric: TRL's metric logger; gets the mean answers per episode (``ssl_gym/turns``).
        **kwargs: The other columns, ignored.

    Returns:
        The episodes' rewards.

    Raises:
        ValueError: Without the rollout's episodes, or with one per completion missing.
    """
    if ssl_gym_episode is None:
        raise ValueError(
            "the ssl_gym episode reward needs the `ssl_gym_episode` field of "
            "HintRollout; pass rollout_func=HintRollout() to GRPOTrainer"
        )
    if len(ssl_gym_episode) != len(completions):
        raise ValueError(f"got {len(completions)} completions but {len(ssl_gym_episode)} episodes")
    if log_metric is not None and ssl_gym_episode:
        log_metric("ssl_gym/turns", float(np.mean([e.turns for e in ssl_gym_episode])))
    return [e.reward for e in ssl_gym_episode]


episode_reward.__name__ = episode_reward.__qualname__ = "ssl_gym_reward"
