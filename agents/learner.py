"""The GRPO learner: turns a rollout batch into PPO updates of the policy.

It does not care who sampled: it needs the requests (prompt, images, history), the
sampled token ids with the sampler's per-token logprobs, and the episode rewards. The
advantages and the old logprobs are taken once per rollout; the batch is then split into
``ppo_mini_batches`` mini-batches, each one optimizer step, for ``ppo_epochs`` passes
(verl's ``ppo_mini_batch_size`` / ``ppo_epochs``). Within a mini-batch the logprobs are
recomputed with grad in micro-batches, each weighted so that the accumulated gradient
equals the mini-batch loss's (token-mean or sequence-mean, over every rank), the
gradient norm is clipped and AdamW steps.

Precision: parameters and AdamW states stay in fp32 (master weights); with
``dtype="bfloat16"`` the forward runs under bf16 autocast (FSDP2: a bf16
``MixedPrecisionPolicy`` with fp32 gradient reduction), so small updates are not lost to
bf16 rounding. Log-probs are taken at the sampling temperature (logits / T).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from agents.config import LearnerConfig
from agents.distributed import (
    DistInfo,
    all_reduce_max,
    all_reduce_mean,
    all_reduce_sum,
    full_optimizer_state_dict,
    full_state_dict,
    full_weights,
    load_full_state,
    shard_model,
)
from agents.grpo import AGGREGATIONS, KL_KINDS, group_advantages, grpo_loss
from agents.models import VLM, completion_logprobs, encode, prompt_text
from agents.rollout import RolloutBatch
from agents.samplers.base import Request, Sample

#: Compute dtypes (torch names) the learner runs its forward in.
COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class _Pass(NamedTuple):
    """One micro-batch's forward: its loss, metrics, token counts and logprob gap."""

    loss: torch.Tensor
    metrics: dict[str, float]
    completion_tokens: int
    forward_tokens: int
    """Prompt and completion tokens run forward (for the trainer's throughput figures)."""
    gap: float


def check_loss_choices(cfg: LearnerConfig) -> None:
    """Raise ``ValueError`` naming the options for an unknown aggregation or KL estimator."""
    for name, valid in (("aggregation", AGGREGATIONS), ("kl_kind", KL_KINDS)):
        if getattr(cfg, name) not in valid:
            raise ValueError(
                f"{name}={getattr(cfg, name)!r} is not valid; choose one of: " + ", ".join(valid)
            )


def _freeze_vision(model: torch.nn.Module) -> int:
    frozen = 0
    for name, param in model.named_parameters():
        if "vision" in name or "visual" in name:
            param.requires_grad_(False)
            frozen += param.numel()
    if not frozen:
        raise ValueError("freeze_vision: found no parameter with 'vision'/'visual' in its name")
    return frozen


def _apply_lora(vlm: VLM, rank: int) -> None:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", lora_dropout=0.0)
    vlm.model = get_peft_model(vlm.model, lora)  # type: ignore[assignment]


def _pad(rows: Sequence[Sequence[Any]], value: float, dtype: torch.dtype) -> torch.Tensor:
    width = max(1, max(len(r) for r in rows))
    out = torch.full((len(rows), width), value, dtype=dtype)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=dtype)
    return out


def completion_batch(
    vlm: VLM, requests: Sequence[Request], samples: Sequence[Sample]
) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encoded prompts, padded completion ids, their mask and the sampler's logprobs."""
    texts = [prompt_text(vlm, r.prompt, len(r.images), r.history) for r in requests]
    prompts = encode(vlm, texts, [list(r.images) for r in requests])
    ids = _pad([s.token_ids for s in samples], vlm.pad_token_id, torch.long)
    mask = _pad([[1] * len(s.token_ids) for s in samples], 0, torch.long)
    sampled = _pad([s.logprobs for s in samples], 0.0, torch.float32)
    return prompts, ids, mask, sampled


class Learner:
    """AdamW on the policy with the GRPO loss; optional frozen reference for the KL term."""

    def __init__(
        self,
        vlm: VLM,
        cfg: LearnerConfig,
        reference: VLM | None = None,
        dist_info: DistInfo | None = None,
    ) -> None:
        if cfg.kl_coef > 0 and reference is None:
            raise ValueError("kl_coef > 0 needs a reference model")
        check_loss_choices(cfg)
        self.vlm, self.cfg, self.reference = vlm, cfg, reference
        self.dist = dist_info or DistInfo()
        self.compute_dtype = COMPUTE_DTYPES[cfg.dtype]
        if cfg.freeze_vision:
            _freeze_vision(vlm.model)
        if cfg.lora_rank:
            _apply_lora(vlm, cfg.lora_rank)
        if cfg.gradient_checkpointing:
            vlm.model.gradient_checkpointing_enable()
        self.fsdp = self.dist.enabled and cfg.parallel == "fsdp"
        if self.fsdp:  # before the optimizer: sharding turns the parameters into DTensors
            shard_model(vlm.model, self.compute_dtype)
            if reference is not None:
                shard_model(reference.model)
        params = [p for p in vlm.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        # the learner's forward goes through DDP (gradient averaging); sampling uses the module
        self.forward_vlm = vlm
        if self.dist.enabled and not self.fsdp:
            ddp = DistributedDataParallel(vlm.model, find_unused_parameters=True)
            self.forward_vlm = dataclasses.replace(vlm, model=ddp)  # type: ignore[arg-type]

    def compute(self) -> contextlib.AbstractContextManager[Any]:
        """The forward's precision: bf16 autocast over fp32 weights, or nothing.

        The trainer samples inside it too, so that the HF sampler's logprobs are the
        learner's. Under FSDP the mixed-precision policy casts instead.
        """
        if self.compute_dtype == torch.float32 or self.fsdp:
            return contextlib.nullcontext()
        return torch.autocast(self.vlm.device.type, dtype=self.compute_dtype)

    def _sync(self, last: bool) -> contextlib.AbstractContextManager[None]:
        """Gradients are averaged over ranks on the last micro-batch only."""
        model = self.forward_vlm.model
        if self.fsdp:
            model.set_requires_gradient_sync(last)  # type: ignore[operator]
        elif self.dist.enabled and not last:
            return model.no_sync()  # type: ignore[operator]
        return contextlib.nullcontext()

    def full_weights(self) -> contextlib.AbstractContextManager[None]:
        """Sampling context: a sharded policy's full weights stay gathered inside it.

        Every rank must enter together; a no-op without FSDP.
        """
        return full_weights(self.vlm.model)

    def state_dicts(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Full weights and optimizer state, for checkpoints (every rank must call)."""
        model = self.vlm.model
        return full_state_dict(model), full_optimizer_state_dict(model, self.optimizer)

    def load_state_dicts(self, weights: dict[str, torch.Tensor], optim: dict[str, Any]) -> None:
        """Restore what ``state_dicts`` returned (every rank must call)."""
        load_full_state(self.vlm.model, self.optimizer, weights, optim)

    def _micro_batches(self, rows: np.ndarray) -> list[np.ndarray]:
        """``rows`` in chunks of at most ``micro_batch_size``, padded under FSDP.

        Every forward of a sharded model is a collective, so every rank runs as many.
        """
        size = self.cfg.micro_batch_size
        chunks = [rows[s : s + size] for s in range(0, len(rows), size)]
        count = len(chunks)
        if self.fsdp:
            count = int(all_reduce_max(count, self.dist))
        return chunks + [rows[:0]] * (count - len(chunks))

    def mini_batches(self, n: int) -> list[np.ndarray]:
        """The ``ppo_mini_batches`` row sets of a batch of ``n`` rows.

        Contiguous runs of rows in rollout order, as even as can be (any partition is a
        valid PPO schedule: advantages and old logprobs are fixed per row beforehand).

        Raises:
            ValueError: If there are fewer rows than mini-batches.
        """
        m = self.cfg.ppo_mini_batches
        if n < m:
            raise ValueError(f"ppo_mini_batches={m} needs at least {m} rows per rank, got {n}")
        return [part for part in np.array_split(np.arange(n), m)]

    def advantages(self, batch: RolloutBatch, group_size: int) -> np.ndarray:
        """Per-row advantages: each episode's group advantage, on every turn of it."""
        rewards = torch.as_tensor(batch.episode_rewards, dtype=torch.float32)
        adv = group_advantages(rewards, group_size, normalize_std=self.cfg.normalize_std)
        return adv.numpy()[batch.episode]

    def _logprobs(
        self, vlm: VLM, prompts: Any, ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        temperature = self.cfg.temperature or 1.0
        with self.compute():
            return completion_logprobs(vlm, prompts, ids, mask, temperature=temperature)

    def _batch(
        self, batch: RolloutBatch, rows: np.ndarray
    ) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:func:`completion_batch` of ``rows``, its prompts checked against the limit."""
        out = completion_batch(
            self.vlm, [batch.requests[i] for i in rows], [batch.samples[i] for i in rows]
        )
        limit = self.cfg.max_prompt_tokens
        if limit:
            lengths = out[0]["attention_mask"].sum(dim=1)
            if int(lengths.max()) > limit:
                raise ValueError(
                    f"a prompt of {int(lengths.max())} tokens (images included) exceeds "
                    f"max_prompt_tokens={limit}: shrink the images (size) or raise the limit"
                )
        return out

    @torch.no_grad()
    def old_logprobs(self, batch: RolloutBatch) -> list[list[float]] | None:
        """Each row's old logprobs, once per rollout; ``None``: the sampler's own.

        With ``recompute``, the learner's, taken before any update of the rollout.
        """
        if self.cfg.old_logprobs == "sampler":
            return None
        out: list[list[float]] = [[] for _ in batch.samples]
        for rows in self._micro_batches(np.arange(len(batch.samples))):
            chosen = rows if len(rows) else np.arange(1)  # FSDP padding: a pass to join in
            prompts, ids, mask, _ = self._batch(batch, chosen)
            logprobs, _ = self._logprobs(self.forward_vlm, prompts, ids, mask)
            for k, i in enumerate(rows):
                out[i] = logprobs[k, : len(batch.samples[i].token_ids)].float().tolist()
        return out

    def _micro_batch(
        self, batch: RolloutBatch, rows: np.ndarray, adv: np.ndarray, old: list[list[float]] | None
    ) -> _Pass:
        prompts, ids, mask, sampled = self._batch(batch, rows)
        logprobs, entropy = self._logprobs(self.forward_vlm, prompts, ids, mask)
        ref = None
        if self.reference is not None and self.cfg.kl_coef > 0:
            with torch.no_grad():
                ref, _ = self._logprobs(self.reference, prompts, ids, mask)
        device = logprobs.device
        valid = mask.to(device)
        sampled = sampled.to(device)
        old_lp = sampled if old is None else _pad([old[i] for i in rows], 0.0, torch.float32)
        old_lp = old_lp.to(device)
        weights = None
        if self.cfg.old_logprobs == "recompute" and self.cfg.tis_cap > 0:
            weights = (old_lp - sampled).exp().clamp(max=self.cfg.tis_cap) * valid
        loss, metrics = grpo_loss(
            logprobs,
            old_lp,
            torch.as_tensor(adv[rows], device=device),
            valid,
            ref_logprobs=ref,
            kl_coef=self.cfg.kl_coef,
            clip_eps=self.cfg.clip_eps,
            clip_eps_high=self.cfg.clip_eps_high or None,
            aggregation=self.cfg.aggregation,  # type: ignore[arg-type]
            kl_kind=self.cfg.kl_kind,  # type: ignore[arg-type]
            entropy=entropy if self.cfg.entropy_coef else entropy.detach(),
            entropy_coef=self.cfg.entropy_coef,
            norm_length=self.cfg.max_new_tokens or None,
            token_weights=weights,
        )
        # the sampler against the learner at the rollout's weights: the recomputed old
        # logprobs, or (sampler's as old) this pass's, before the first optimizer step
        here = old_lp if self.cfg.old_logprobs == "recompute" else logprobs.detach()
        gap = (here - sampled).abs()[valid.bool()]
        return _Pass(
            loss,
            metrics,
            completion_tokens=int(mask.sum()),
            forward_tokens=int(prompts["attention_mask"].sum() + mask.sum()),
            gap=float(gap.max()) if gap.numel() else 0.0,
        )

    def _update(
        self, batch: RolloutBatch, rows: np.ndarray, adv: np.ndarray, old: list[list[float]] | None
    ) -> tuple[dict[str, float], float, float, float]:
        """One optimizer step on one mini-batch.

        Returns its metrics, gradient norm, logprob gap and the tokens run forward
        (prompts and completions).
        """
        # each micro-batch's share of the mini-batch over every rank; DDP and FSDP average
        # gradients over ranks, hence x world
        world = self.dist.world
        tokens = sum(len(batch.samples[i].token_ids) for i in rows)
        total_tokens = max(1.0, all_reduce_sum(tokens, self.dist))
        total_rows = max(1.0, all_reduce_sum(len(rows), self.dist))
        sums: dict[str, float] = {}
        gap, tokens_seen = 0.0, 0.0
        chunks = self._micro_batches(rows)
        for index, chunk in enumerate(chunks):
            padding = len(chunk) == 0  # FSDP only: a weightless pass so every rank joins in
            with self._sync(index == len(chunks) - 1):
                done = self._micro_batch(batch, rows[:1] if padding else chunk, adv, old)
                token_mean = self.cfg.aggregation == "token_mean"
                share = (
                    done.completion_tokens / total_tokens if token_mean else len(chunk) / total_rows
                )
                share = 0.0 if padding else share
                (done.loss * share * world).backward()
            if not padding:
                gap, tokens_seen = max(gap, done.gap), tokens_seen + done.forward_tokens
            for key, value in done.metrics.items():
                sums[key] = sums.get(key, 0.0) + value * share * world
        params = [p for p in self.vlm.model.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
        if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP
            grad_norm = grad_norm.full_tensor()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return sums, float(grad_norm), gap, tokens_seen

    def step(self, batch: RolloutBatch, group_size: int) -> dict[str, float]:
        """``ppo_epochs x ppo_mini_batches`` optimizer steps on one rollout batch.

        Returns namespaced metrics, averaged over the updates; ``sampler/logprob_gap_max``
        is the largest gap between the sampler's and the learner's logprobs at the
        rollout's weights, over every rank (with the sampler's logprobs as old ones, on
        the first mini-batch: later ones see a policy that has moved).
        """
        self.vlm.model.train()
        adv = self.advantages(batch, group_size)
        old = self.old_logprobs(batch)
        parts = self.mini_batches(len(batch.samples))
        sums: dict[str, float] = {}
        norms: list[float] = []
        gap, tokens = 0.0, 0.0
        for _ in range(self.cfg.ppo_epochs):
            for rows in parts:
                metrics, norm, part_gap, part_tokens = self._update(batch, rows, adv, old)
                tokens += part_tokens
                if not norms or self.cfg.old_logprobs == "recompute":
                    gap = max(gap, part_gap)  # after a step the policy moved: not a gap
                norms.append(norm)
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + value / (len(parts) * self.cfg.ppo_epochs)
        self.vlm.model.eval()
        return {
            **all_reduce_mean(sums, self.dist),
            "learner/grad_norm": float(np.mean(norms)),
            "learner/updates": float(len(norms)),
            "learner/lr": self.optimizer.param_groups[0]["lr"],
            "sampler/logprob_gap_max": all_reduce_max(gap, self.dist),
            "learner/tokens": tokens,  # this rank's, for the trainer's perf/* figures
        }
