"""TRL: reward functions for ``GRPOTrainer`` that give the env's reward.

The dataset comes from :func:`ssl_gym.adapters.datasets.to_dataset` (columns
``prompt``, ``images``, ``answer``, ``info``); TRL feeds ``prompt`` and ``images`` to the
model and passes the other columns to reward functions as keyword arguments, repeated
per generation. This module needs no TRL import::

    from trl import GRPOConfig, GRPOTrainer
    from ssl_gym.adapters.datasets import to_dataset
    from ssl_gym.adapters.trl import reward_funcs

    ds = to_dataset("SSL/Rotation-4way-v1", n=1000)
    trainer = GRPOTrainer(model=..., reward_funcs=reward_funcs("SSL/Rotation-4way-v1"),
                          args=GRPOConfig(...), train_dataset=ds)

``reward_funcs(ids)`` returns one function, ``ssl_gym_reward``: the env's reward (TRL logs
it as ``rewards/ssl_gym_reward/mean``). With ``components=True`` it returns the reward's
parts instead (``ssl_gym_accuracy``, ``ssl_gym_format``), whose sum, TRL's ``reward``
with unit weights, is the same reward.

The ``-Hint`` ids are multi-turn (the env replies between answers), so a dataset row
cannot score them; :mod:`ssl_gym.adapters.trl_env` plays them through ``GRPOTrainer``'s
``rollout_func`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ssl_gym.adapters._records import check_exportable, load_payload, score_completion

RewardFunc = Callable[..., list[float]]


def completion_text(completion: Any) -> str:
    """A completion as text: a string, or the assistant text of conversational messages.

    TRL passes strings for standard datasets and lists of messages
    (``[{"role": "assistant", "content": ...}]``, content a string or text parts) for
    conversational ones; the text of the assistant messages is joined.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence):
        texts = []
        for message in completion:
            if not isinstance(message, dict):
                raise TypeError(f"a conversational completion holds dicts, got {message!r}")
            if message.get("role", "assistant") == "assistant":
                texts.append(_content_text(message.get("content")))
        return "".join(texts)
    raise TypeError(f"a completion must be a str or a list of messages, got {completion!r}")


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    return "".join(parts)


def _verdicts(
    ids: frozenset[str] | None, completions: Sequence[Any], info: Sequence[Any] | None
) -> list[Any]:
    if info is None:
        raise ValueError(
            "the ssl_gym reward needs the dataset's `info` column; build the dataset with "
            "ssl_gym.adapters.datasets.to_dataset (and keep remove_unused_columns=False)"
        )
    if len(info) != len(completions):
        raise ValueError(f"got {len(completions)} completions but {len(info)} info rows")
    out = []
    for completion, payload in zip(completions, info, strict=True):
        data = load_payload(payload)
        if ids is not None and data["id"] not in ids:
            raise ValueError(f"row of {data['id']!r} reached a reward for {sorted(ids)}")
        out.append(score_completion(completion_text(completion), data))
    return out


def _make(name: str, ids: frozenset[str] | None, part: str | None) -> RewardFunc:
    def reward(
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        info: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        verdicts = _verdicts(ids, completions, info)
        if part is None:
            return [float(v.reward) for v in verdicts]
        return [float(v.components[part]) for v in verdicts]

    reward.__name__ = reward.__qualname__ = name
    reward.__doc__ = f"TRL reward function {name!r}: the ssl_gym env's {part or 'reward'}."
    return reward


def reward_funcs(
    ids: str | Sequence[str] | None = None, components: bool = False
) -> list[RewardFunc]:
    """TRL reward functions (``f(prompts, completions, info, **kwargs) -> list[float]``).

    Args:
        ids: The env id or ids the dataset holds (rows of other ids raise), or ``None``
            for any ssl_gym row.
        components: Return the reward's parts (accuracy, format) as separate functions
            instead of one function giving the whole reward.

    Returns:
        The reward functions, named for TRL's logs (``rewards/<name>/mean``).

    Raises:
        ValueError: If an id is not a single-turn puzzle id.
    """
    names = [ids] if isinstance(ids, str) else None if ids is None else list(ids)
    for env_id in names or []:
        check_exportable(env_id)
    allowed = None if names is None else frozenset(names)
    if not components:
        return [_make("ssl_gym_reward", allowed, None)]
    return [_make(f"ssl_gym_{p}", allowed, p) for p in ("accuracy", "format")]
