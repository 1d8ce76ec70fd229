"""Model policies: a checkpoint or an endpoint playing held-out puzzles.

``hf:DIR`` and ``vllm:DIR`` sample a local checkpoint with the HF or vLLM sampler,
``openai:URL`` an OpenAI-compatible endpoint. :func:`make_sampler` builds every sampler
of the project (the trainer's too) and :func:`play_held_out` is the one held-out player:
``ssl-gym eval`` and the trainer's evaluation both call it, and both report
:func:`ssl_gym.evaluation.metrics`' names. :func:`main` is ``ssl-gym eval``: ssl_gym's
run with these policies added.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.rollout import rollout
from agents.samplers.base import SamplingParams
from ssl_gym import evaluation
from ssl_gym.evaluation import Outcome, Policy
from ssl_gym.evaluation.policies import MODEL_POLICIES, env_settings


def make_sampler(
    kind: str,
    target: Any,
    *,
    model: str = "default",
    **engine: Any,
) -> Any:
    """The sampler of ``kind``: ``hf``, ``vllm`` or ``openai``.

    Args:
        kind: Which sampler.
        target: For ``hf`` and ``vllm`` a loaded :class:`agents.models.VLM` (vLLM loads
            its directory) or a model directory, for ``openai`` the endpoint's URL.
        model: The model name an OpenAI endpoint serves.
        **engine: vLLM engine settings (``dtype``, ``gpu_memory_utilization``, ...).
    """
    if kind == "hf":
        from agents.models import VLM, load_vlm
        from agents.samplers.hf import HFSampler

        if not isinstance(target, VLM):
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
            target = load_vlm(str(target), device=device)
        return HFSampler(target)
    if kind == "vllm":
        from agents.samplers.vllm import VLLMSampler

        path = Path(getattr(target, "path", target))
        return VLLMSampler(path, **engine)
    if kind == "openai":
        from agents.samplers.openai import OpenAISampler

        key = os.environ.get("OPENAI_API_KEY", "EMPTY")
        return OpenAISampler(str(target), model, api_key=key)
    raise ValueError(f"sampler {kind!r}; choose hf, vllm or openai")


def play_held_out(
    envs: gym.vector.VectorEnv,
    sampler: Any,
    params: SamplingParams,
    seeds: Sequence[int],
    group_size: int = 1,
    options: dict[str, Any] | None = None,
) -> list[Outcome]:
    """Play one episode per env of ``envs`` from ``seeds``; one outcome per episode."""
    batch = rollout(envs, sampler, params, list(seeds), group_size, options=options)
    return [
        Outcome(
            float(batch.episode_rewards[i]),
            float(batch.episode_scores[i]),
            bool(batch.episode_format_ok[i]),
            int(batch.turns[i]),
        )
        for i in range(len(seeds))
    ]


@dataclass
class ModelPolicy:
    """A model sampled through one of ``agents``' samplers (imported on first use)."""

    name: str
    temperature: float | None = None
    max_new_tokens: int = 64
    constrain: bool = False
    batch_size: int = 16
    model: str = "default"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra ``gym.make`` arguments of every id (e.g. ``answer_format``)."""
    sampler: Any = None

    def settings(self) -> dict[str, Any]:
        """Sampling settings (a resumed run must sample the same way)."""
        out: dict[str, Any] = {
            "temperature": self.temperature,
            "max_new_tokens": self.max_new_tokens,
            "constrain": self.constrain,
        }
        if self.env_kwargs:
            out["env_kwargs"] = self.env_kwargs
        return {**out, "model": self.model} if self.name.startswith("openai:") else out

    def prepare(self) -> None:
        """Load the model (or reach the endpoint's client) now, before the run is recorded."""
        self._sampler()

    def _sampler(self) -> Any:
        if self.sampler is None:
            kind, _, target = self.name.partition(":")
            self.sampler = make_sampler(kind, target, model=self.model)
        return self.sampler

    def params(self, samples: int, seed: int) -> Any:
        """Greedy for one sample unless a temperature is given; else T (default 1)."""
        temperature = self.temperature
        if temperature is None:
            temperature = 0.0 if samples == 1 else 1.0
        return SamplingParams(
            temperature=temperature,
            max_new_tokens=self.max_new_tokens,
            constrain=self.constrain,
            seed=seed % 2**31,
        )

    def play(self, env_id: str, seeds: Sequence[int], samples: int) -> list[list[Outcome]]:
        """One rollout over ``len(seeds) * samples`` envs (groups of ``samples``)."""
        sampler = self._sampler()
        envs = gym.make_vec(
            env_id, len(seeds) * samples, vectorization_mode="sync", **self.env_kwargs
        )
        group = [s for s in seeds for _ in range(samples)]
        try:
            outs = play_held_out(envs, sampler, self.params(samples, seeds[0]), group, samples)
        finally:
            envs.close()
        return [outs[i * samples : (i + 1) * samples] for i in range(len(seeds))]


def make_policy(
    spec: str,
    temperature: float | None = None,
    max_new_tokens: int = 64,
    constrain: bool = False,
    batch_size: int = 16,
    model: str = "default",
    answer_format: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> Policy:
    """The policy named by ``spec``: a model policy, else one of ssl_gym's own.

    ``random``, ``oracle`` and ``blind`` come from :func:`ssl_gym.evaluation.make_policy`,
    which takes the same arguments.

    Raises:
        ValueError: For an unknown policy or a model policy without its target.
    """
    kind, sep, target = spec.partition(":")
    if kind not in MODEL_POLICIES or not sep or not target:
        return evaluation.make_policy(
            spec,
            temperature,
            max_new_tokens,
            constrain,
            batch_size,
            model,
            answer_format,
            env_kwargs,
        )
    kwargs = env_settings(answer_format, env_kwargs)
    return ModelPolicy(spec, temperature, max_new_tokens, constrain, batch_size, model, kwargs)


def main(argv: list[str]) -> int:
    """``ssl-gym eval``: :func:`ssl_gym.evaluation.cli.main` with the model policies."""
    from ssl_gym.evaluation.cli import main as eval_main

    return eval_main(argv, policies=make_policy)
