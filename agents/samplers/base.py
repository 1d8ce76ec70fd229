"""The sampler protocol: who turns observations into completions, with logprobs.

The learner does not care who sampled: a :class:`Sampler` takes :class:`Request` objects
(an observation's prompt and images, the conversation so far, the answer grammar) and
returns ``n`` :class:`Sample` objects per request with the token ids and per-token
log-probabilities of what it sampled. ``HFSampler`` (transformers) is the CPU sampler;
the vLLM and OpenAI-compatible samplers implement the same protocol.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from agents.samplers.grammar import completion_grammar


@dataclass(frozen=True)
class SamplingParams:
    """How to sample."""

    n: int = 1
    """Completions per request (the GRPO group size when groups share a request)."""
    temperature: float = 1.0
    """Softmax temperature; 0 means greedy."""
    top_p: float = 1.0
    """Nucleus sampling mass."""
    max_new_tokens: int = 64
    """Longest completion in tokens."""
    constrain: bool = False
    """Restrict completions to the request's answer grammar (choices or pattern)."""
    seed: int | None = None
    """Seed of the sampling generator, for reproducible rollouts."""

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_new_tokens < 1:
            raise ValueError(
                f"n and max_new_tokens must be >= 1, got {self.n}, {self.max_new_tokens}"
            )
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(
                f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}"
            )


@dataclass(frozen=True)
class Request:
    """One prompt to complete: an observation plus the conversation so far."""

    prompt: str
    images: tuple[np.ndarray, ...]
    history: tuple[tuple[str, str], ...] = ()
    """(role, text) turns after the first user turn, for multi-turn play."""
    choices: tuple[str, ...] | None = None
    """Valid answers, when the answer grammar is a finite list (the env's ``choices``)."""
    pattern: str | None = None
    """A regular expression valid answers match, otherwise (the env's ``pattern``)."""
    answer_format: str = "plain"
    """How the answer is written in a completion (the env's ``answer_format``)."""

    @functools.cached_property
    def grammar(self) -> tuple[tuple[str, ...] | None, str | None]:
        """The valid *completions*: the answers wrapped in the answer format (built once)."""
        return completion_grammar(self.choices, self.pattern, self.answer_format)

    @property
    def constrained(self) -> bool:
        """Whether the request declares an answer grammar to decode within."""
        return self.choices is not None or self.pattern is not None


@dataclass
class Sample:
    """One completion and how likely the sampler found each of its tokens."""

    text: str
    token_ids: list[int]
    logprobs: list[float]
    """Log-probability of each sampled token: under the unconstrained policy at the
    sampling temperature (HF sampler), or as the sampler reports them (vLLM: see
    :mod:`agents.samplers.vllm`)."""
    finish_reason: str = "stop"
    """``stop`` (an end-of-turn token) or ``length`` (max_new_tokens reached)."""
    extra: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Sampler(Protocol):
    """Anything that completes requests and can take the learner's new weights."""

    def sample(self, requests: Sequence[Request], params: SamplingParams) -> list[list[Sample]]:
        """``params.n`` samples for each request, in request order."""
        ...

    def load_weights(self, model: torch.nn.Module) -> None:
        """Take the learner's current weights (no-op when they share the module)."""
        ...
