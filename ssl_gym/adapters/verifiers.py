"""ssl_gym puzzles as a verifiers 0.4 environment (the ``verifiers.v1`` API).

Needs the ``verifiers`` extra (``pip install "ssl-gym[verifiers]"``).

    env = load_environment("SSL/Jigsaw-3x3-v2", num_examples=64, seed=0)

returns a ``vf.Env``. The module is also a verifiers plugin: its ``__all__`` exports
the one :class:`~verifiers.v1.Taskset`, :class:`~verifiers.v1.Env` and
:class:`~verifiers.v1.Harness` subclass that verifiers' loaders look for. verifiers
imports a plugin by a top-level module name (its id), so the package
``ssl_gym_verifiers`` (installed with ssl_gym) re-exports this module: configs and
verifiers' CLI use ``--env.taskset.id ssl_gym_verifiers``.

## How a puzzle becomes a verifiers task

* Task ``i`` of a taskset is ``gym.make(env_id, **env_kwargs).reset(seed=s_i)`` with
  ``s_i = record_seed(seed, split, i)``: the same puzzles as record ``i`` of that split
  of ``ssl-gym export`` (train and test never share a seed); the task data keeps
  ``env_id``, ``env_kwargs`` and ``seed`` so the episode can be rebuilt anywhere.
* The prompt is one user message: the observation images as OpenAI
  ``image_url`` content parts holding PNG data URLs, then the prompt text.
* :class:`VerifiersEnv` (a ``vf.Env``) plays the ssl_gym env as the run's user:
  each assistant reply is stepped through the Gymnasium env; while the episode goes on
  (the ``-Hint`` ids), the env's feedback and hint come back as the next user turn.
  A single-turn id ends after one reply, exactly like ``vf.SingleAgentEnv``.
* The reward (``@vf.reward puzzle_reward``) replays the trace's assistant replies
  through a fresh env built from the task data, so it equals what
  ``PuzzleEnv.step`` gives for the same replies, hint cost included; ``score``,
  ``format_ok`` and ``turns`` are recorded as metrics.
* The default harness, :class:`ChatHarness`, is an in-process chat loop (one model
  call per segment through verifiers' interception endpoint, no tools, no code
  execution), so a rollout needs neither a container nor ``uv``; pin another harness
  (e.g. ``null``) on the ``agent`` seat to use it instead.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from typing import Any

import gymnasium as gym
import httpx
import numpy as np
import verifiers.v1 as vf
from pydantic import Field
from verifiers.v1.dialects.chat import message_to_wire

import ssl_gym  # noqa: F401 - registers the SSL/ ids
from ssl_gym.core import check_int
from ssl_gym.envs import unknown_id
from ssl_gym.render import png_data_url
from ssl_gym.seeds import SPLITS, record_seed

__all__ = [
    "ChatHarness",
    "ChatHarnessConfig",
    "PuzzleData",
    "PuzzleTask",
    "PuzzleTaskset",
    "PuzzleTasksetConfig",
    "VerifiersEnv",
    "VerifiersEnvConfig",
    "image_data_url",
    "load_environment",
]

#: The plugin id verifiers imports this module by: verifiers resolves a plugin id to a
#: top-level module name, and the ``ssl_gym_verifiers`` package re-exports this module.
PLUGIN_ID = "ssl_gym_verifiers"


#: A uint8 ``(H, W, 3)`` image as a PNG data URL.
image_data_url = png_data_url


def user_message(images: Sequence[np.ndarray], text: str) -> vf.UserMessage:
    """One user turn: the images as data-URL content parts, then the text."""
    parts: list[vf.ContentPart] = [
        vf.ImageUrlContentPart(image_url=vf.ImageUrlSource(url=image_data_url(im))) for im in images
    ]
    parts.append(vf.TextContentPart(text=text))
    return vf.UserMessage(content=parts)


# --- tasks ------------------------------------------------------------------------------


class PuzzleData(vf.TaskData):
    """One puzzle: the env to rebuild it from, and its ground truth for logging."""

    env_id: str
    """The registered ssl_gym id, e.g. ``SSL/Jigsaw-3x3-v2``."""
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of ``gym.make`` (config overrides, ``max_turns``, ...)."""
    seed: int
    """The seed ``reset`` gets: it fixes the instance."""
    answer: str
    """Ground truth as answer text (never shown to the model)."""


def make_env(data: PuzzleData) -> Any:
    """The ssl_gym env of a task, reset to the task's instance."""
    env = gym.make(data.env_id, disable_env_checker=True, **data.env_kwargs)
    env.reset(seed=data.seed)
    return env


def replay(data: PuzzleData, replies: Sequence[str]) -> tuple[float, dict[str, Any]]:
    """Step ``replies`` through the task's env; the final reward and step info.

    Replies after the episode ended are ignored; no reply at all scores 0.
    """
    env = make_env(data)
    reward, info = 0.0, {}
    for reply in replies:
        _, reward, terminated, truncated, info = env.step(reply)
        if terminated or truncated:
            break
    return float(reward), info


def assistant_replies(trace: vf.Trace) -> list[str]:
    """The texts the model answered with, in order (as the env saw them)."""
    return [(m.content or "").strip() for m in trace.assistant_messages]


class PuzzleTask(vf.Task[PuzzleData, vf.State, vf.TaskConfig]):
    """A puzzle task scored by the puzzle's own verifier."""

    def _replay(self, task: PuzzleData, trace: vf.Trace) -> tuple[float, dict[str, Any]]:
        replies = tuple(assistant_replies(trace))
        cache = self.__dict__.setdefault("_replays", {})
        if replies not in cache:
            cache.clear()  # one trace at a time is enough to share work between hooks
            cache[replies] = replay(task, replies)
        return cache[replies]

    @vf.metric
    async def puzzle(self, task: PuzzleData, trace: vf.Trace) -> dict[str, float]:
        """``score`` (in [0, 1]), ``format_ok`` and ``turns`` of the episode."""
        _, info = self._replay(task, trace)
        return {
            "score": float(info.get("score", 0.0)),
            "format_ok": float(bool(info.get("format_ok", False))),
            "turns": float(info.get("turn", 0)),
        }

    @vf.reward
    async def puzzle_reward(self, task: PuzzleData, trace: vf.Trace) -> float:
        """What ``PuzzleEnv.step`` gives for the trace's replies (hint cost included)."""
        return self._replay(task, trace)[0]


class PuzzleTasksetConfig(vf.TasksetConfig):
    """Which puzzles a taskset yields (``--env.taskset.*``)."""

    env_id: str = "SSL/Rotation-4way-v1"
    """The registered ssl_gym id; ``-Hint`` ids play multi-turn."""
    num_examples: int | None = 100
    """Tasks in the taskset; ``None`` for an endless stream."""
    seed: int = 0
    """Seed of the taskset; task ``i`` resets with ``record_seed(seed, split, i)``."""
    split: str = "train"
    """``train`` or ``test``: the split of ``ssl-gym export`` whose seeds to use."""
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of ``gym.make``: config overrides (``size``,
    ``answer_format``...), ``image_source``, ``max_turns``, ``hint_cost``."""
    system_prompt_text: str | None = None
    """An optional system prompt for every task."""


class PuzzleTaskset(vf.Taskset[PuzzleTask, PuzzleTasksetConfig]):
    """Puzzles drawn from one ssl_gym env, one per seed."""

    def __init__(self, config: PuzzleTasksetConfig) -> None:
        if config.env_id not in gym.registry:
            raise ValueError(unknown_id(config.env_id))
        if config.num_examples is not None:
            check_int("num_examples", config.num_examples, 1)
        if config.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {config.split!r}")
        super().__init__(config)
        self.INFINITE = config.num_examples is None

    def load(self) -> Iterator[PuzzleTask]:
        """Yield the tasks: one ``reset`` of the env per task."""
        cfg = self.config
        env = gym.make(cfg.env_id, disable_env_checker=True, **cfg.env_kwargs)
        indices = itertools.count() if cfg.num_examples is None else range(cfg.num_examples)
        for i in indices:
            seed = record_seed(cfg.seed, cfg.split, i)
            obs, info = env.reset(seed=seed)
            data = PuzzleData(
                name=f"{cfg.env_id}#{i}",
                prompt=[user_message(obs["images"], obs["prompt"])],
                system_prompt=cfg.system_prompt_text,
                env_id=cfg.env_id,
                env_kwargs=dict(cfg.env_kwargs),
                seed=seed,
                answer=info["answer"],
            )
            yield PuzzleTask(data, cfg.task)


# --- the env: the Gymnasium env plays the user ------------------------------------------


class VerifiersEnvConfig(vf.EnvConfig):
    """The env's config: one ``agent`` seat, as on ``vf.SingleAgentEnv``."""

    agent: vf.AgentConfig = vf.AgentConfig(runtime={"type": "subprocess"})
    """The policy's seat; its harness defaults to :class:`ChatHarness` on the host."""


class VerifiersEnv(vf.Env[VerifiersEnvConfig]):
    """The ssl_gym env plays the user: each reply is stepped; hints come back as turns."""

    async def run(self, task: vf.Task, agents: vf.Agents) -> None:
        """One episode: ask, step the reply, relay the env's reply until it ends."""
        env = make_env(task.data)
        async with agents.agent.interaction(task) as conversation:
            segment = await conversation.turn()
            while not segment.terminated:
                obs, _, terminated, truncated, _ = env.step(segment.last_reply)
                if terminated or truncated:
                    break
                segment = await conversation.turn(obs["prompt"])


# --- the harness: one chat completion per segment, in process ----------------------------


class ChatHarnessConfig(vf.HarnessConfig):
    """Settings of :class:`ChatHarness`."""

    id: str = PLUGIN_ID
    request_timeout: float = 600.0
    """Seconds one model call may take."""


class ChatHarness(vf.Harness[ChatHarnessConfig]):
    """A tool-less chat loop run in process: one model call per segment.

    Every call goes through the rollout's interception endpoint, which records it on
    the trace and applies the run's model and sampling settings.
    """

    APPENDS_SYSTEM_PROMPT = True
    SUPPORTS_RESUME = True
    EXECUTES_CODE = False
    NEEDS_CONTAINER = False

    async def launch(
        self,
        ctx: vf.ModelContext,
        trace: vf.Trace,
        runtime: vf.Runtime,
        endpoint: str,
        secret: str,
        mcp_urls: dict[str, str],
        data: vf.TaskData,
    ) -> vf.ProgramResult:
        """Send the conversation once; the reply lands on the trace."""
        system, prompt = self.resolve_prompt(data)
        messages = [{"role": "system", "content": system}] if system else []
        messages += wire_messages(prompt)
        body = {"model": ctx.model, "messages": messages}
        async with httpx.AsyncClient(timeout=self.config.request_timeout) as client:
            response = await client.post(
                endpoint.rstrip("/") + "/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {secret}"},
            )
        if response.status_code != 200:
            return vf.ProgramResult(1, "", f"HTTP {response.status_code}: {response.text}")
        return vf.ProgramResult(0, json.dumps(response.json()), "")


def wire_messages(prompt: str | list[Any] | None) -> list[dict[str, Any]]:
    """A task prompt as OpenAI chat messages."""
    if prompt is None:
        return []
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [message_to_wire(m) for m in prompt]


# --- the entry point --------------------------------------------------------------------


def load_environment(
    env_id: str = "SSL/Rotation-4way-v1",
    num_examples: int | None = 100,
    seed: int = 0,
    system_prompt: str | None = None,
    split: str = "train",
    **env_kwargs: Any,
) -> VerifiersEnv:
    """The verifiers environment of an ssl_gym id.

    Args:
        env_id: registered id, e.g. ``"SSL/Jigsaw-3x3-v2"``; ``-Hint`` ids play
            multi-turn with the env's feedback and hints as extra user turns.
        num_examples: tasks in the taskset (``None``: endless).
        seed: taskset seed; task ``i`` is ``reset(seed=record_seed(seed, split, i))``,
            the puzzle of record ``i`` of that split of ``ssl-gym export``.
        system_prompt: optional system prompt for every task.
        split: ``"train"`` or ``"test"`` (their seeds never meet).
        **env_kwargs: passed to ``gym.make`` (config overrides such as ``size=64``,
            ``answer_format="plain"``, or ``image_source``, ``max_turns``).

    Returns:
        A ``vf.Env``; run it with ``env.serving()`` and ``env.run_episode``, or
        through verifiers' CLI with ``--env.taskset.id ssl_gym_verifiers``.
    """
    taskset = PuzzleTasksetConfig(
        id=PLUGIN_ID,
        env_id=env_id,
        num_examples=num_examples,
        seed=seed,
        split=split,
        env_kwargs=env_kwargs,
        system_prompt_text=system_prompt,
    )
    return VerifiersEnv(VerifiersEnvConfig(taskset=taskset))
