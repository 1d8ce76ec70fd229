"""Two PettingZoo games on the ssl_gym puzzles.

Needs the ``adapters`` extra (``pip install "ssl-gym[adapters]"``).

* :func:`duel_env` (``ParallelEnv``): ``N`` players get the same puzzle (one seed, the
  same bytes); each player's reward is its own score minus the mean of the others'
  scores, a zero-sum self-play signal. A player's score is the reward the Gymnasium env
  gives its completion (``info["score_reward"]``).
* :func:`describer_solver_env` (``AECEnv``, cooperative): the describer sees the
  original image the puzzle was cut from (before shuffling, rotating, masking) and
  writes a message of at most ``max_message_chars`` printable characters; the solver
  sees the puzzle with the message in its prompt and answers. Both get the solver's
  score.

Observations and actions use the Gymnasium env's spaces (``{"images", "prompt"}`` and
:class:`~ssl_gym.envs.spaces.Completion`). ``-Hint`` ids play multi-turn: a player who
has not solved the puzzle gets the env's feedback and next hint as its next prompt; in
the duel a player who is done waits (its actions are ignored) until every player is
done, and all rewards come at the end. ``reset(seed=s)`` fixes the puzzle; a later
``reset()`` draws its seed from the generator ``s`` started.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv

import ssl_gym  # noqa: F401 - registers the SSL/ ids
from ssl_gym.core import Instance, check_int
from ssl_gym.envs.puzzle_env import make_puzzle_env
from ssl_gym.envs.spaces import PROMPT_CHARSET, PROMPT_MAX_LENGTH, Completion, prompt_space
from ssl_gym.images import ImageSource, make_source

Observation = dict[str, Any]

DESCRIBER_PROMPT = (
    "You see the original picture of a visual puzzle that your teammate must solve "
    "without seeing this picture. Describe what your teammate needs to know in at most "
    "{limit} characters; only your first {limit} characters are passed on."
)
MESSAGE_INTRO = "Message from a teammate who saw the original picture: "

_ALLOWED = frozenset(PROMPT_CHARSET)


def _check_action(agent: str, action: Any) -> str:
    if not isinstance(action, str):
        raise TypeError(
            f"the action of {agent!r} must be its completion as a str, got {type(action).__name__}"
        )
    return action


class _Seeder:
    """Episode seeds: ``reset(seed=s)`` restarts the stream, ``reset()`` continues it."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng()

    def next(self, seed: int | None) -> int:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        return int(self.rng.integers(0, 2**31 - 1))


# --- duel -------------------------------------------------------------------------------


def duel_rewards(scores: dict[str, float]) -> dict[str, float]:
    """Each player's score minus the mean of the others' scores (zero-sum)."""
    if len(scores) < 2:
        raise ValueError(f"a duel needs at least 2 players, got {len(scores)}")
    total, n = sum(scores.values()), len(scores)
    return {a: s - (total - s) / (n - 1) for a, s in scores.items()}


class DuelEnv(ParallelEnv[str, Observation, str]):
    """``N`` players answer the same puzzle; reward = own score - mean of the others'."""

    metadata = {  # noqa: RUF012
        "name": "ssl_gym_duel_v0",
        "render_modes": ["rgb_array"],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        env_id: str,
        n_agents: int = 2,
        render_mode: str | None = None,
        max_cycles: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Build the duel.

        Args:
            env_id: registered ssl_gym id, e.g. ``"SSL/Jigsaw-3x3-v2"``.
            n_agents: players, 2 to 64.
            render_mode: ``"rgb_array"`` (:meth:`render` returns the puzzle's picture),
                ``None``, or ``"human"`` (accepted, nothing is drawn: there is no window).
            max_cycles: steps after which every player still playing is truncated, with
                the reward it has earned so far (``None``: the puzzle's own turn limit).
            **kwargs: passed to ``gym.make`` (config overrides, ``image_source``...).
        """
        check_int("n_agents", n_agents, 2, 64)
        kwargs = _render_kwargs(render_mode, kwargs)
        if max_cycles is not None:
            check_int("max_cycles", max_cycles, 1, 10**6)
        self.env_id, self.render_mode, self.max_cycles = env_id, render_mode, max_cycles
        self.possible_agents = [f"player_{i}" for i in range(n_agents)]
        self.agents: list[str] = []
        self._envs = {a: make_puzzle_env(env_id, **kwargs) for a in self.possible_agents}
        self._cycles = 0
        self._last: dict[str, float] = {}
        first = self._envs[self.possible_agents[0]]
        self._observation_spaces = {a: first.observation_space for a in self.possible_agents}
        self._action_spaces = {a: Completion() for a in self.possible_agents}
        self._seeder = _Seeder()
        self._done: dict[str, bool] = {}
        self._final: dict[str, float] = {}
        self._obs: dict[str, Observation] = {}
        self._infos: dict[str, dict[str, Any]] = {}

    def observation_space(self, agent: str) -> spaces.Space:
        """The Gymnasium env's observation space (the same object each call)."""
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        """A :class:`Completion` per player (the same object each call)."""
        return self._action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Observation], dict[str, dict[str, Any]]]:
        """Deal one puzzle to every player."""
        episode_seed = self._seeder.next(seed)
        self.agents = list(self.possible_agents)
        self._done, self._final = dict.fromkeys(self.agents, False), {}
        self._cycles, self._last = 0, dict.fromkeys(self.agents, 0.0)
        for agent in self.agents:
            self._obs[agent], self._infos[agent] = self._envs[agent].reset(seed=episode_seed)
        return dict(self._obs), copy.deepcopy(self._infos)

    def step(
        self, actions: dict[str, str]
    ) -> tuple[
        dict[str, Observation],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Verify each playing player's completion; rewards come when all are done."""
        if not self.agents:
            raise RuntimeError("the duel is over or never started: call reset() first")
        playing = [a for a in self.agents if not self._done[a]]
        missing = [a for a in playing if a not in actions]
        if missing:
            raise ValueError(f"no action for player(s) still playing: {missing}")
        for agent in playing:
            self._play(agent, _check_action(agent, actions[agent]))
        self._cycles += 1
        cut = [a for a in self.agents if not self._done[a]]
        if self.max_cycles is not None and self._cycles >= self.max_cycles and cut:
            for agent in cut:  # truncated with what it has earned so far
                self._done[agent], self._final[agent] = True, self._last[agent]
        else:
            cut = []
        over = all(self._done.values())
        rewards = duel_rewards(self._final) if over else dict.fromkeys(self.agents, 0.0)
        terminated = {a: over and a not in cut for a in self.agents}
        truncated = {a: over and a in cut for a in self.agents}
        out = (dict(self._obs), rewards, terminated, truncated)
        infos = copy.deepcopy(self._infos)
        if over:
            self.agents = []
        return (*out, infos)

    def _play(self, agent: str, completion: str) -> None:
        obs, reward, terminated, truncated, info = self._envs[agent].step(completion)
        self._obs[agent], self._last[agent] = obs, float(reward)
        self._infos[agent] = {**info, "score_reward": float(reward)}
        if terminated or truncated:
            self._done[agent] = True
            self._final[agent] = float(reward)

    def render(self) -> np.ndarray | None:
        """The puzzle's picture (every player has the same) with ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        return self._envs[self.possible_agents[0]].render()

    def close(self) -> None:
        """Close the players' envs."""
        for env in self._envs.values():
            env.close()


def duel_env(env_id: str, n_agents: int = 2, **kwargs: Any) -> DuelEnv:
    """A :class:`DuelEnv`: ``n_agents`` players, one puzzle, zero-sum rewards."""
    return DuelEnv(env_id, n_agents, **kwargs)


def _render_kwargs(render_mode: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The puzzle env's ``gym.make`` arguments of a game's ``render_mode`` (checked)."""
    if render_mode not in (None, "rgb_array", "human"):
        raise ValueError(f"render_mode={render_mode!r} is not valid; choose None or 'rgb_array'")
    return {**kwargs, "render_mode": "rgb_array"} if render_mode == "rgb_array" else kwargs


# --- describer and solver ---------------------------------------------------------------


class _OriginalRecorder(ImageSource):
    """An image source that records every image drawn through it since :meth:`clear`.

    The original picture of an instance is the recorded image whose key is the first of
    the instance's ``source_keys`` (:meth:`original`).
    """

    def __init__(self, source: ImageSource) -> None:
        self.source = source
        self.spec = source.spec
        self._drawn: list[tuple[str, np.ndarray]] = []

    def clear(self) -> None:
        """Forget the images drawn so far (called before each reset of the puzzle env)."""
        self._drawn.clear()

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError("sample() delegates to the wrapped source")

    def draw(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
        """The wrapped source's image and key, both recorded."""
        image, key = self.source.draw(rng, shape)
        self._drawn.append((key, image.copy()))
        return image, key

    def original(self, instance: Instance) -> np.ndarray:
        """The picture ``instance`` was cut from, drawn since the last :meth:`clear`.

        The last recorded image with the key ``source_keys[0]``: rejected draws come
        before the accepted one, so an earlier image with that key (the same picture
        drawn by a rejected draw) is not the one the instance was cut from.
        """
        keys = instance.metadata.get("source_keys")
        if not keys:
            raise ValueError(
                f"{instance.family} instances record no source_keys in their metadata; "
                "the describer cannot tell which picture they were cut from"
            )
        for key, image in reversed(self._drawn):
            if key == keys[0]:
                return image
        raise RuntimeError(f"the puzzle drew no picture with its scene's key {keys[0]!r}")


def _fit(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if image.shape == shape:
        return image
    from PIL import Image

    resized = Image.fromarray(image).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def clean_message(text: str, limit: int) -> str:
    """The describer's message as the solver gets it: printable text, at most ``limit``."""
    kept = "".join(ch if ch in _ALLOWED else " " for ch in text)
    return kept[:limit].strip()


#: Families whose puzzle is cut from one source image (the describer's picture).
ONE_IMAGE_FAMILIES = (
    "Rotation",
    "Position",
    "Jigsaw",
    "FlipPatch",
    "Inpainting",
    "Correspondence",
    "OddTile",
)


class DescriberSolverEnv(AECEnv[str, Observation, str]):
    """The describer sees the original picture and writes; the solver answers the puzzle."""

    metadata = {  # noqa: RUF012
        "name": "ssl_gym_describer_solver_v0",
        "render_modes": ["rgb_array"],
        "is_parallelizable": False,
    }

    def __init__(
        self,
        env_id: str,
        max_message_chars: int = 200,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Build the game.

        Args:
            env_id: registered ssl_gym id of a one-image family (see
                :data:`ONE_IMAGE_FAMILIES`), e.g. ``"SSL/Jigsaw-3x3-v2"``.
            max_message_chars: longest message passed on, 1 to 2000 characters.
            render_mode: ``"rgb_array"`` (:meth:`render` returns the puzzle's picture),
                ``None``, or ``"human"`` (accepted, nothing is drawn).
            **kwargs: passed to ``gym.make`` (config overrides, ``image_source``...).
        """
        super().__init__()
        check_int("max_message_chars", max_message_chars, 1, 2000)
        self.render_mode = render_mode
        kwargs = _render_kwargs(render_mode, kwargs)
        self.env_id, self.max_message_chars = env_id, max_message_chars
        self._recorder = _OriginalRecorder(make_source(kwargs.pop("image_source", "procedural")))
        self._env = make_puzzle_env(env_id, image_source=self._recorder, **kwargs)
        family = self._env.puzzle.family
        if family not in ONE_IMAGE_FAMILIES:
            raise ValueError(
                f"{env_id!r}: the describer needs one original picture, and {family} puzzles "
                f"are cut from several; use one of {', '.join(ONE_IMAGE_FAMILIES)}"
            )
        self.possible_agents = ["describer_0", "solver_0"]
        self._original_shape = self._probe_shape()
        self._observation_spaces = {
            "describer_0": self._describer_space(),
            "solver_0": self._env.observation_space,
        }
        self._action_spaces = {a: Completion() for a in self.possible_agents}
        self._seeder = _Seeder()
        self._obs: dict[str, Observation] = {}

    def _probe_shape(self) -> tuple[int, ...]:
        return tuple(self._reset_puzzle(0)[2].shape)

    def _reset_puzzle(self, seed: int | None) -> tuple[Observation, dict[str, Any], np.ndarray]:
        """Reset the puzzle env: its observation, its info and the original picture."""
        self._recorder.clear()
        obs, info = self._env.reset(seed=seed)
        if self._env.instance is None:
            raise RuntimeError(f"{self.env_id!r}: the puzzle env drew no instance")
        original = self._recorder.original(self._env.instance)
        self._recorder.clear()
        return obs, info, original

    def _describer_space(self) -> spaces.Dict:
        image = spaces.Box(0, 255, shape=self._original_shape, dtype=np.uint8)
        return spaces.Dict({"images": spaces.Tuple([image]), "prompt": prompt_space()})

    def observation_space(self, agent: str) -> spaces.Space:
        """The describer: the original picture; the solver: the Gymnasium env's space."""
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        """A :class:`Completion` per agent (the same object each call)."""
        return self._action_spaces[agent]

    def observe(self, agent: str) -> Observation:
        """The agent's current observation."""
        return self._obs[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        """Draw a puzzle; the describer moves first."""
        obs, info, drawn = self._reset_puzzle(self._seeder.next(seed))
        original = _fit(drawn, self._original_shape)
        prompt = DESCRIBER_PROMPT.format(limit=self.max_message_chars)
        self._obs = {
            "describer_0": {"images": (original,), "prompt": prompt},
            "solver_0": obs,
        }
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {"describer_0": {}, "solver_0": copy.deepcopy(info)}
        self.agent_selection = "describer_0"

    def step(self, action: str | None) -> None:
        """The describer's message, or the solver's answer (verified by the puzzle)."""
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        completion = _check_action(agent, action)
        self._cumulative_rewards[agent] = 0.0
        self._clear_rewards()
        if agent == "describer_0":
            self._tell(completion)
        else:
            self._answer(completion)
        self._accumulate_rewards()

    def _tell(self, completion: str) -> None:
        message = clean_message(completion, self.max_message_chars)
        solver = self._obs["solver_0"]
        prompt = f"{MESSAGE_INTRO}{message or '(no message)'}\n\n{solver['prompt']}"
        self._obs["solver_0"] = {**solver, "prompt": prompt[:PROMPT_MAX_LENGTH]}
        self.infos["describer_0"] = {"message": message}
        self.agent_selection = "solver_0"

    def _answer(self, completion: str) -> None:
        obs, reward, terminated, truncated, info = self._env.step(completion)
        self._obs["solver_0"] = obs
        self.infos["solver_0"] = {**info, "message": self.infos["describer_0"]["message"]}
        if terminated or truncated:
            self.rewards = dict.fromkeys(self.agents, float(reward))
            self.terminations = dict.fromkeys(self.agents, True)
            self.agent_selection = self._deads_step_first()

    def render(self) -> np.ndarray | None:
        """The puzzle's picture, as the solver sees it, with ``render_mode="rgb_array"``."""
        return self._env.render() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        """Close the puzzle env."""
        self._env.close()


def describer_solver_env(
    env_id: str, max_message_chars: int = 200, **kwargs: Any
) -> DescriberSolverEnv:
    """A :class:`DescriberSolverEnv`: describe the original picture, then solve."""
    return DescriberSolverEnv(env_id, max_message_chars, **kwargs)


__all__ = [
    "ONE_IMAGE_FAMILIES",
    "DescriberSolverEnv",
    "DuelEnv",
    "clean_message",
    "describer_solver_env",
    "duel_env",
    "duel_rewards",
]
