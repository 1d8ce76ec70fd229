"""GRPO math: group advantages, the clipped surrogate, KL estimators and loss aggregation.

Small pure torch functions; the learner owns the model, the optimizer and the batching.
Shapes: ``B`` completions (``B / G`` prompts times a group of ``G`` samples each, the
samples of one prompt consecutive), ``T`` completion tokens (right-padded), ``V`` vocab.
``mask`` is ``(B, T)``, nonzero on completion tokens that count; every function ignores
the values under ``mask == 0`` entirely (value and gradient), so padding may hold anything.

Advantages (:func:`group_advantages`). For the rewards ``r_1..r_G`` of one group,

    A_i = (r_i - mean(r)) / (std(r) + eps)        (normalize_std=True, GRPO)
    A_i =  r_i - mean(r)                           (normalize_std=False, Dr. GRPO)

``std`` is the Bessel-corrected (``unbiased=True``) sample standard deviation, as in TRL's
``GRPOTrainer`` and verl's ``compute_grpo_outcome_advantage``; a group of one sample has
advantage 0. Dividing by the std up-weights prompts that are nearly always or nearly never
solved (low std); Dr. GRPO (Liu et al., 2025) drops it to remove that difficulty bias.
A group whose rewards are all equal carries no signal and gets exactly 0.

Policy loss (:func:`policy_loss`). Per token, with ``rho = exp(logp - logp_old)`` the
importance ratio between the learner and the policy that sampled the completion,

    l_t = -min(rho_t * A, clip(rho_t, 1 - eps_low, 1 + eps_high) * A)

(PPO's clipped surrogate; ``eps_high > eps_low`` is DAPO's clip-higher). The clipped branch
is active, and the token's gradient zero, when ``rho > 1 + eps_high`` with ``A > 0`` or
``rho < 1 - eps_low`` with ``A < 0``. At ``rho = 1`` (one update per batch) the gradient
of ``l_t`` with respect to ``logp_t`` is ``-A``.

Aggregation (:func:`aggregate`) of per-token values ``x`` into a scalar; ``n_i`` is the
number of valid tokens of sequence ``i``, ``N = sum_i n_i``, and ``S`` the sequences with
``n_i > 0``:

- ``"token_mean"``: ``sum_{i,t} x / N``. Every token weighs the same (DAPO, SSL4RL).
- ``"seq_mean"``: ``mean_{i in S} (sum_t x_it / n_i)``. Every sequence weighs the same,
  so tokens of short completions weigh more (original GRPO).
- ``"seq_mean_token_sum"``: ``mean_{i in S} sum_t x_it``. Long completions weigh more.
- ``"seq_mean_token_sum_norm"``: ``mean_{i in S} sum_t x_it / L`` with ``L`` a constant:
  the generation limit (``norm_length``; Dr. GRPO), so that micro-batches of different
  padding accumulate exactly. Without ``norm_length``, ``L`` is the padded width.

KL to a frozen reference (:func:`kl_penalty`), per token, with ``d = logp - logp_ref`` and
samples drawn from the current policy (Schulman's estimators of ``KL(pi || pi_ref)``):

- ``"k1"``: ``d`` (unbiased, high variance, can be negative);
- ``"k2"``: ``d^2 / 2`` (biased, low variance);
- ``"k3"``: ``exp(-d) + d - 1`` (unbiased, low variance, ``>= 0``; GRPO's choice). As in
  verl's ``low_var_kl``, ``-d`` is clamped to ``[-20, 20]`` and the result to ``[-10, 10]``.

:func:`grpo_loss` composes them: ``policy + kl_coef * KL - entropy_coef * H``, each term
aggregated the same way. Its metrics are python floats: ``loss/*`` for the loss terms,
``policy/clip_frac`` (with ``_low`` and ``_high``: fractions of valid tokens whose
clipped branch is active), ``policy/ratio_mean``, ``policy/approx_kl`` (token mean of
``rho - 1 - log rho``, the k3 estimator of ``KL(pi_old || pi)`` on the sampler's tokens)
and ``policy/entropy`` / ``policy/ref_kl`` when entropy / reference log-probs are given.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

Aggregation = Literal["token_mean", "seq_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm"]
KLKind = Literal["k1", "k2", "k3"]

AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)
KL_KINDS: tuple[str, ...] = get_args(KLKind)

#: Bound on ``log_ref - logp`` before ``exp`` in the k3 estimator, and on the estimate itself.
_K3_LOG_RATIO_CLAMP = 20.0
_K3_VALUE_CLAMP = 10.0


# --- validation helpers ----------------------------------------------------------------------


def _check_shape(name: str, x: Tensor, expected: tuple[int, ...] | torch.Size) -> None:
    """Raise ``ValueError`` when ``x`` does not have the ``expected`` shape."""
    if tuple(x.shape) != tuple(expected):
        raise ValueError(
            f"{name} must have shape {tuple(expected)}, got {tuple(x.shape)}",
        )


def _check_choice(name: str, value: str, options: tuple[str, ...]) -> None:
    """Raise ``ValueError`` listing ``options`` when ``value`` is not one of them."""
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)}; got {value!r}")


def _check_token_tensors(mask: Tensor, **tensors: Tensor) -> None:
    """Check that ``mask`` is ``(B, T)`` and every tensor in ``tensors`` has its shape."""
    if mask.dim() != 2:
        raise ValueError(f"mask must have shape (B, T), got {tuple(mask.shape)}")
    for name, x in tensors.items():
        _check_shape(name, x, mask.shape)


def _valid(mask: Tensor) -> Tensor:
    """Boolean view of a mask: nonzero entries are valid."""
    return mask if mask.dtype == torch.bool else mask != 0


def _zero_masked(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` with the entries under ``mask == 0`` replaced by 0 (they get no gradient)."""
    return torch.where(_valid(mask), x, torch.zeros((), dtype=x.dtype, device=x.device))


# --- advantages ------------------------------------------------------------------------------


def group_advantages(
    rewards: Tensor,
    group_size: int,
    normalize_std: bool = True,
    eps: float = 1e-6,
) -> Tensor:
    """Group-relative advantages: reward minus its group's mean, optionally over its std.

    Args:
        rewards: ``(B,)`` rewards; samples ``[k * group_size, (k + 1) * group_size)`` are
            the completions of prompt ``k``.
        group_size: Samples per prompt ``G``; must divide ``B``.
        normalize_std: Divide by the group's (Bessel-corrected) std plus ``eps`` (GRPO).
            ``False`` keeps the centred rewards (Dr. GRPO, no difficulty bias).
        eps: Added to the std before dividing.

    Returns:
        ``(B,)`` advantages (float; the dtype of ``rewards`` when it is floating point),
        exactly 0 for groups whose rewards are all equal.

    Raises:
        ValueError: If ``rewards`` is not 1-D or not finite, or ``group_size`` is not a
            positive divisor of ``B``, or ``eps`` is negative.
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must have shape (B,), got {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size != 0:
        raise ValueError(
            f"group_size must be a positive divisor of the batch size {rewards.numel()}, "
            f"got {group_size}",
        )
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if not bool(torch.isfinite(rewards).all()):
        raise ValueError("rewards must be finite")
    if not rewards.is_floating_point():
        rewards = rewards.float()
    grouped = rewards.reshape(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if normalize_std:
        var = centred.square().sum(dim=1, keepdim=True) / max(group_size - 1, 1)
        centred = centred / (var.sqrt() + eps)
    constant = (grouped == grouped[:, :1]).all(dim=1, keepdim=True)
    return centred.masked_fill(constant, 0.0).reshape(-1)


# --- masked reductions -----------------------------------------------------------------------


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``x`` over the entries where ``mask`` is nonzero.

    Args:
        x: Values.
        mask: Same shape as ``x``; bool, or numbers where nonzero means valid.
        dim: Dimension to reduce; ``None`` reduces all.

    Returns:
        The masked sum (a scalar when ``dim`` is ``None``). Masked entries contribute
        neither value (even ``inf`` or ``nan``) nor gradient.

    Raises:
        ValueError: If the shapes differ.
    """
    _check_shape("mask", mask, x.shape)
    kept = _zero_masked(x, mask)
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over the entries where ``mask`` is nonzero; 0 where none are.

    Args:
        x: Values.
        mask: Same shape as ``x``; bool, or numbers where nonzero means valid.
        dim: Dimension to reduce; ``None`` reduces all.

    Returns:
        The masked mean; a reduction with no valid entry gives 0 rather than ``nan``.

    Raises:
        ValueError: If the shapes differ.
    """
    valid = _valid(mask)
    count = valid.sum() if dim is None else valid.sum(dim=dim)
    return masked_sum(x, valid, dim) / count.clamp(min=1).to(x.dtype)


def aggregate(
    values: Tensor,
    mask: Tensor,
    aggregation: Aggregation = "token_mean",
    norm_length: int | None = None,
) -> Tensor:
    """Reduce per-token ``(B, T)`` values to a scalar (see the module docstring).

    Args:
        values: ``(B, T)`` per-token values (loss, KL, entropy).
        mask: ``(B, T)`` valid-token mask.
        aggregation: ``"token_mean"``, ``"seq_mean"``, ``"seq_mean_token_sum"`` or
            ``"seq_mean_token_sum_norm"``.
        norm_length: Dr. GRPO's constant divisor (the generation limit, at least ``T``);
            ``None`` divides by the padded width ``T``.

    Returns:
        A scalar tensor; 0 when no token is valid.

    Raises:
        ValueError: On an unknown ``aggregation`` or mismatched shapes.
    """
    _check_choice("aggregation", aggregation, AGGREGATIONS)
    _check_token_tensors(mask, values=values)
    if aggregation == "token_mean":
        return masked_mean(values, mask)
    valid = _valid(mask)
    lengths = valid.sum(dim=-1)
    per_seq = masked_sum(values, valid, dim=-1)
    if aggregation == "seq_mean":
        per_seq = per_seq / lengths.clamp(min=1).to(values.dtype)
    elif aggregation == "seq_mean_token_sum_norm":
        if norm_length is not None and norm_length < values.shape[-1]:
            raise ValueError(f"norm_length={norm_length} is below the width {values.shape[-1]}")
        per_seq = per_seq / (norm_length or values.shape[-1])
    return masked_mean(per_seq, lengths > 0)


# --- per-token terms -------------------------------------------------------------------------


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, kind: KLKind = "k3") -> Tensor:
    """Per-token estimate of ``KL(pi || pi_ref)`` from log-probs of tokens sampled from ``pi``.

    Args:
        logprobs: Log-probs of the sampled tokens under the policy (any shape).
        ref_logprobs: Log-probs of the same tokens under the frozen reference.
        kind: ``"k1"`` (``d``), ``"k2"`` (``d^2 / 2``) or ``"k3"`` (``exp(-d) + d - 1``,
            clamped as in verl), with ``d = logprobs - ref_logprobs``.

    Returns:
        Per-token estimates, shape of ``logprobs``. ``"k2"`` and ``"k3"`` are ``>= 0``.

    Raises:
        ValueError: On an unknown ``kind`` or mismatched shapes.
    """
    _check_choice("kind", kind, KL_KINDS)
    _check_shape("ref_logprobs", ref_logprobs, logprobs.shape)
    delta = logprobs - ref_logprobs
    if kind == "k1":
        return delta
    if kind == "k2":
        return 0.5 * delta.square()
    log_ratio = (-delta).clamp(-_K3_LOG_RATIO_CLAMP, _K3_LOG_RATIO_CLAMP)
    k3 = log_ratio.exp() - log_ratio - 1.0
    return k3.clamp(-_K3_VALUE_CLAMP, _K3_VALUE_CLAMP)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of ``softmax(logits)`` over the last dimension, in nats.

    Computed from ``log_softmax`` (no overflow for large logits); ``-inf`` logits (banned
    tokens) contribute 0 instead of ``nan``.

    Args:
        logits: ``(..., V)`` unnormalised log-probabilities.

    Returns:
        ``(...)`` entropies, each in ``[0, log V]``.

    Raises:
        ValueError: If ``logits`` is a scalar.
    """
    if logits.dim() == 0:
        raise ValueError("logits must have a vocabulary dimension, got a scalar")
    logp = torch.log_softmax(logits, dim=-1)
    safe_logp = torch.where(torch.isfinite(logp), logp, torch.zeros_like(logp))
    return -(logp.exp() * safe_logp).sum(dim=-1)


def token_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    """Log-probabilities of the given tokens under ``softmax(logits)``.

    Args:
        logits: ``(..., V)`` logits at the positions that predict ``tokens``.
        tokens: ``(...)`` integer token ids.

    Returns:
        ``(...)`` log-probs, ``log_softmax(logits)[..., tokens]``.

    Raises:
        ValueError: If the leading shapes differ.
    """
    if logits.dim() == 0:
        raise ValueError("logits must have a vocabulary dimension, got a scalar")
    _check_shape("tokens", tokens, logits.shape[:-1])
    picked = logits.gather(-1, tokens.unsqueeze(-1).long()).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


# --- losses ----------------------------------------------------------------------------------


def _token_advantages(advantages: Tensor, mask: Tensor) -> Tensor:
    """Broadcast ``(B,)`` sequence advantages to ``(B, T)``; ``(B, T)`` passes through."""
    if advantages.dim() == 1:
        _check_shape("advantages", advantages, mask.shape[:1])
        return advantages.unsqueeze(-1).expand_as(mask)
    _check_shape("advantages", advantages, mask.shape)
    return advantages


def _check_clip(clip_eps: float, clip_eps_high: float) -> None:
    """Raise ``ValueError`` on negative clip ranges."""
    if clip_eps < 0 or clip_eps_high < 0:
        raise ValueError(
            f"clip_eps and clip_eps_high must be >= 0, got {clip_eps} and {clip_eps_high}",
        )


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    aggregation: Aggregation = "token_mean",
    norm_length: int | None = None,
    token_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO/GRPO clipped surrogate loss, aggregated over valid tokens.

    Args:
        logprobs: ``(B, T)`` log-probs of the sampled tokens under the learner (with grad).
        old_logprobs: ``(B, T)`` log-probs under the policy that sampled them; ``None``
            means on-policy (``logprobs.detach()``, ratio 1).
        advantages: ``(B,)`` per sequence (broadcast over tokens) or ``(B, T)`` per token.
        mask: ``(B, T)`` valid-token mask.
        clip_eps: Lower clip range, ``rho >= 1 - clip_eps``.
        clip_eps_high: Upper clip range, ``rho <= 1 + clip_eps_high``; ``None`` uses
            ``clip_eps`` (symmetric). DAPO uses 0.28 with ``clip_eps=0.2``.
        aggregation: How per-token losses become a scalar (see :func:`aggregate`).
        norm_length: Dr. GRPO's constant divisor (see :func:`aggregate`).
        token_weights: ``(B, T)`` detached per-token weights of the surrogate, e.g.
            truncated importance sampling's ``min(pi_old / pi_sampler, C)``; ``None``: 1.

    Returns:
        ``(loss, metrics)``: the scalar loss and ``loss/policy``, ``policy/clip_frac``,
        ``policy/clip_frac_low``, ``policy/clip_frac_high``, ``policy/ratio_mean`` and
        ``policy/approx_kl`` as floats.

    Raises:
        ValueError: On mismatched shapes, negative clip ranges or an unknown aggregation.
    """
    eps_high = clip_eps if clip_eps_high is None else clip_eps_high
    _check_clip(clip_eps, eps_high)
    old = logprobs.detach() if old_logprobs is None else old_logprobs
    _check_token_tensors(mask, logprobs=logprobs, old_logprobs=old)
    adv = _zero_masked(_token_advantages(advantages, mask), mask)
    log_ratio = _zero_masked(logprobs - old, mask)
    ratio = log_ratio.exp()
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + eps_high)
    per_token = torch.maximum(-adv * ratio, -adv * clipped)
    if token_weights is not None:
        _check_token_tensors(mask, token_weights=token_weights)
        per_token = per_token * token_weights.detach()
    loss = aggregate(per_token, mask, aggregation, norm_length)
    metrics = _ratio_metrics(ratio.detach(), log_ratio.detach(), adv, mask, clip_eps, eps_high)
    metrics["loss/policy"] = loss.item()
    return loss, metrics


def _ratio_metrics(
    ratio: Tensor,
    log_ratio: Tensor,
    adv: Tensor,
    mask: Tensor,
    clip_eps: float,
    clip_eps_high: float,
) -> dict[str, float]:
    """Clip fractions, mean ratio and sampler-to-learner KL over the valid tokens."""
    low = ((ratio < 1.0 - clip_eps) & (adv < 0)).to(ratio.dtype)
    high = ((ratio > 1.0 + clip_eps_high) & (adv > 0)).to(ratio.dtype)
    approx_kl = ratio - 1.0 - log_ratio
    return {
        "policy/clip_frac": masked_mean(low + high, mask).item(),
        "policy/clip_frac_low": masked_mean(low, mask).item(),
        "policy/clip_frac_high": masked_mean(high, mask).item(),
        "policy/ratio_mean": masked_mean(ratio, mask).item(),
        "policy/approx_kl": masked_mean(approx_kl, mask).item(),
    }


def grpo_loss(
    logprobs: Tensor,
    old_logprobs: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    ref_logprobs: Tensor | None = None,
    kl_coef: float = 0.0,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    aggregation: Aggregation = "token_mean",
    kl_kind: KLKind = "k3",
    entropy: Tensor | None = None,
    entropy_coef: float = 0.0,
    norm_length: int | None = None,
    token_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """GRPO loss: clipped surrogate + ``kl_coef`` * KL to a reference - ``entropy_coef`` * H.

    Args:
        logprobs: ``(B, T)`` log-probs of the sampled tokens under the learner (with grad).
        old_logprobs: ``(B, T)`` log-probs under the sampling policy; ``None`` = on-policy.
        advantages: ``(B,)`` or ``(B, T)`` advantages (see :func:`group_advantages`).
        mask: ``(B, T)`` valid-token mask.
        ref_logprobs: ``(B, T)`` log-probs under the frozen reference; needed when
            ``kl_coef > 0``, and logged as ``policy/ref_kl`` whenever given.
        kl_coef: Weight of the KL penalty (``beta``; 0 as in DAPO / Dr. GRPO).
        clip_eps: Lower clip range.
        clip_eps_high: Upper clip range; ``None`` uses ``clip_eps``.
        aggregation: How every per-token term becomes a scalar (see :func:`aggregate`).
        kl_kind: KL estimator, ``"k1"``, ``"k2"`` or ``"k3"`` (see :func:`kl_penalty`).
        entropy: ``(B, T)`` per-token entropies (see :func:`entropy_from_logits`); needed
            when ``entropy_coef != 0``, and logged as ``policy/entropy`` whenever given.
        entropy_coef: Weight of the entropy bonus (subtracted from the loss).
        norm_length: Dr. GRPO's constant divisor (see :func:`aggregate`).
        token_weights: Per-token weights of the surrogate (see :func:`policy_loss`).

    Returns:
        ``(loss, metrics)``: the scalar loss and the metrics of :func:`policy_loss` plus
        ``loss/total``, and ``loss/kl`` / ``policy/ref_kl`` and ``loss/entropy`` /
        ``policy/entropy`` when the terms are present.

    Raises:
        ValueError: On mismatched shapes, a negative ``kl_coef``, a missing reference or
            entropy that a nonzero coefficient needs, or an unknown option.
    """
    if kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
    if kl_coef > 0 and ref_logprobs is None:
        raise ValueError("kl_coef > 0 needs ref_logprobs")
    if entropy_coef != 0 and entropy is None:
        raise ValueError("entropy_coef != 0 needs the per-token entropy")
    loss, metrics = policy_loss(
        logprobs,
        old_logprobs,
        advantages,
        mask,
        clip_eps,
        clip_eps_high,
        aggregation,
        norm_length,
        token_weights,
    )
    if ref_logprobs is not None:
        _check_token_tensors(mask, ref_logprobs=ref_logprobs)
        kl_tokens = kl_penalty(
            _zero_masked(logprobs, mask), _zero_masked(ref_logprobs, mask), kl_kind
        )
        kl = aggregate(kl_tokens, mask, aggregation, norm_length)
        loss = loss + kl_coef * kl
        metrics["loss/kl"] = kl_coef * kl.item()
        metrics["policy/ref_kl"] = kl.item()
    if entropy is not None:
        _check_token_tensors(mask, entropy=entropy)
        ent = aggregate(entropy, mask, aggregation, norm_length)
        loss = loss - entropy_coef * ent
        metrics["loss/entropy"] = -entropy_coef * ent.item()
        metrics["policy/entropy"] = ent.item()
    metrics["loss/total"] = loss.item()
    return loss, metrics
