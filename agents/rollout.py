"""Rollouts: GRPO groups of envs, one sampler call per turn, one batch out.

A GRPO group is ``group_size`` envs reset with the same seed, so they hold the same
puzzle; ``num_groups`` groups fill a Gymnasium vector env. Each turn, every live env's
observation (with the conversation so far) becomes a :class:`Request`, the sampler
completes all of them in one call, and the vector env steps. Episodes that need several
turns (hinted play) continue until every env is done; an env that is done waits with an
empty action (its autoreset result is ignored). The outcome is a :class:`RolloutBatch`:
one row per sampled turn, with the episode's final reward.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from agents.samplers.base import Request, Sample, Sampler, SamplingParams

__all__ = ["RolloutBatch", "rollout"]


@dataclass
class RolloutBatch:
    """Everything the learner needs: one row per sampled turn."""

    requests: list[Request]
    samples: list[Sample]
    episode: np.ndarray
    """Index of the env (episode) each row belongs to."""
    group: np.ndarray
    """GRPO group of each row."""
    rewards: np.ndarray
    """Final episode reward, repeated on every turn of the episode."""
    reward_components: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-episode reward components (``accuracy``, ``format``, ...)."""
    episode_rewards: np.ndarray = field(default_factory=lambda: np.zeros(0))
    episode_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    episode_format_ok: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """Whether each episode's final answer was well formed and parsed (the env's)."""
    turns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    env_seconds: float = 0.0
    """Time spent in env reset and step."""
    sample_seconds: float = 0.0
    """Time spent in the sampler."""

    def shard(self, rank: int, world: int, group_size: int) -> RolloutBatch:
        """This rank's whole GRPO groups (episodes split in contiguous blocks of groups)."""
        episodes = len(self.episode_rewards)
        groups = episodes // group_size
        if groups % world:
            raise ValueError(f"{groups} groups do not split over {world} ranks")
        per = groups // world * group_size
        lo, hi = rank * per, (rank + 1) * per
        rows = [i for i, e in enumerate(self.episode) if lo <= e < hi]
        return RolloutBatch(
            requests=[self.requests[i] for i in rows],
            samples=[self.samples[i] for i in rows],
            episode=self.episode[rows] - lo,
            group=self.group[rows] - lo // group_size,
            rewards=self.rewards[rows],
            reward_components={k: v[lo:hi] for k, v in self.reward_components.items()},
            episode_rewards=self.episode_rewards[lo:hi],
            episode_scores=self.episode_scores[lo:hi],
            episode_format_ok=self.episode_format_ok[lo:hi],
            turns=self.turns[lo:hi],
        )

    @property
    def num_tokens(self) -> int:
        """Completion tokens sampled in this rollout."""
        return sum(len(s.token_ids) for s in self.samples)


def _requests(
    infos: dict[str, Any],
    histories: list[list[tuple[str, str]]],
    live: Sequence[int],
    first: dict[int, tuple[str, tuple[np.ndarray, ...]]],
) -> list[Request]:
    reqs = []
    for i in live:
        prompt, images = first[i]
        choices = infos["choices"][i] if "choices" in infos else None
        pattern = infos["pattern"][i] if "pattern" in infos else None
        fmt = str(infos["answer_format"][i]) if "answer_format" in infos else "plain"
        reqs.append(
            Request(
                prompt,
                images,
                tuple(histories[i]),
                None if choices is None else tuple(choices),
                pattern,
                fmt,
            )
        )
    return reqs


def _first_turn(obs: dict[str, Any], i: int) -> tuple[str, tuple[np.ndarray, ...]]:
    images = tuple(np.array(stack[i]) for stack in obs["images"])
    return str(obs["prompt"][i]), images


def rollout(
    envs: gym.vector.VectorEnv,
    sampler: Sampler,
    params: SamplingParams,
    seeds: Sequence[int],
    group_size: int,
    max_turns: int = 64,
    on_turn: Callable[[int], None] | None = None,
    options: dict[str, Any] | None = None,
) -> RolloutBatch:
    """Play one episode in every env of ``envs`` and collect the trajectory.

    ``max_turns`` is a safety cap (envs end their episodes themselves); ``options`` go to
    ``reset`` (e.g. ``{"level": k}`` for a curriculum over a mixture).
    """
    n = envs.num_envs
    if len(seeds) != n or n % group_size:
        raise ValueError(f"need one seed per env ({n}) and groups of {group_size} dividing it")
    clock = time.perf_counter()
    obs, infos = envs.reset(seed=list(seeds), options=options)  # type: ignore[arg-type]
    env_s, sample_s = time.perf_counter() - clock, 0.0
    first = {i: _first_turn(obs, i) for i in range(n)}
    histories: list[list[tuple[str, str]]] = [[] for _ in range(n)]
    done = np.zeros(n, dtype=bool)
    final_reward, final_score = np.zeros(n), np.zeros(n)
    final_format = np.zeros(n, dtype=bool)
    components: dict[str, np.ndarray] = {}
    rows_req, rows_sample, rows_ep, turns = [], [], [], np.zeros(n, dtype=int)
    for turn in range(max_turns):
        live = [i for i in range(n) if not done[i]]
        reqs = _requests(infos, histories, live, first)
        clock = time.perf_counter()
        samples = [group[0] for group in sampler.sample(reqs, params)]
        sample_s += time.perf_counter() - clock
        actions = [""] * n
        for i, req, sample in zip(live, reqs, samples, strict=True):
            actions[i] = sample.text
            rows_req.append(req)
            rows_sample.append(sample)
            rows_ep.append(i)
            turns[i] += 1
        clock = time.perf_counter()
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        env_s += time.perf_counter() - clock
        for i, sample in zip(live, samples, strict=True):
            if terminated[i] or truncated[i]:
                done[i] = True
                final_reward[i], final_score[i] = rewards[i], infos["score"][i]
                final_format[i] = bool(infos["format_ok"][i])
                for key, values in infos["reward_components"].items():
                    components.setdefault(key, np.zeros(n))[i] = values[i]
            else:
                histories[i] += [("assistant", sample.text), ("user", str(obs["prompt"][i]))]
        if on_turn is not None:
            on_turn(turn)
        if done.all():
            break
    episode = np.asarray(rows_ep)
    return RolloutBatch(
        requests=rows_req,
        samples=rows_sample,
        episode=episode,
        group=episode // group_size,
        rewards=final_reward[episode],
        reward_components=components,
        episode_rewards=final_reward,
        episode_scores=final_score,
        episode_format_ok=final_format,
        turns=turns,
        env_seconds=env_s,
        sample_seconds=sample_s,
    )
