"""The GRPO learner: turns a rollout batch into one optimizer step.

It does not care who sampled: it needs the requests (prompt, images, history), the
sampled token ids with the sampler's per-token logprobs, and the episode rewards. It
recomputes the logprobs with grad in micro-batches, weights each micro-batch so that the
accumulated gradient equals the full-batch loss's (token-mean or sequence-mean), clips
the gradient norm and steps AdamW.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

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
from agents.grpo import group_advantages, grpo_loss
from agents.models import VLM, completion_logprobs, encode, prompt_text
from agents.rollout import RolloutBatch
from agents.samplers.base import Request, Sample


@dataclass(frozen=True)
class LearnerConfig:
    """Optimisation settings of the learner."""

    lr: float = 1e-6
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient norm clipping threshold."""
    micro_batch_size: int = 16
    """Rows per forward/backward pass; gradients accumulate over the batch."""
    clip_eps: float = 0.2
    """PPO-style ratio clip range."""
    kl_coef: float = 0.0
    """Weight of the k3 KL penalty to the frozen initial model (0 = no reference model)."""
    aggregation: str = "token_mean"
    """Loss aggregation: ``token_mean`` (DAPO, SSL4RL) or ``seq_mean`` (original GRPO)."""
    normalize_std: bool = True
    """Divide group advantages by the group's reward std."""
    lora_rank: int = 0
    """LoRA rank (peft); 0 trains all weights."""
    freeze_vision: bool = False
    """Keep the vision tower frozen."""
    gradient_checkpointing: bool = False
    """Trade compute for memory (GPU)."""
    old_logprobs: str = "sampler"
    """``sampler``: the ratio's denominator is the sampler's logprobs (they equal the
    learner's for the HF sampler); ``recompute``: the learner's own, detached (on-policy,
    as verl recomputes them), needed when a sampler reports logprobs after its grammar
    mask (vLLM with structured outputs)."""
    parallel: str = "ddp"
    """Under torchrun: ``ddp`` (every rank holds the whole model) or ``fsdp`` (FSDP2
    ``fully_shard``: weights, gradients and AdamW states sharded over ranks)."""


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
        if cfg.old_logprobs not in ("sampler", "recompute"):
            raise ValueError(f"old_logprobs={cfg.old_logprobs!r}; choose sampler or recompute")
        if cfg.parallel not in ("ddp", "fsdp"):
            raise ValueError(f"parallel={cfg.parallel!r}; choose ddp or fsdp")
        self.vlm, self.cfg, self.reference = vlm, cfg, reference
        self.dist = dist_info or DistInfo()
        if cfg.freeze_vision:
            _freeze_vision(vlm.model)
        if cfg.lora_rank:
            _apply_lora(vlm, cfg.lora_rank)
        if cfg.gradient_checkpointing:
            vlm.model.gradient_checkpointing_enable()
        self.fsdp = self.dist.enabled and cfg.parallel == "fsdp"
        if self.fsdp:  # before the optimizer: sharding turns the parameters into DTensors
            shard_model(vlm.model)
            if reference is not None:
                shard_model(reference.model)
        params = [p for p in vlm.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        # the learner's forward goes through DDP (gradient averaging); sampling uses the module
        self.forward_vlm = vlm
        if self.dist.enabled and not self.fsdp:
            ddp = DistributedDataParallel(vlm.model, find_unused_parameters=True)
            self.forward_vlm = dataclasses.replace(vlm, model=ddp)  # type: ignore[arg-type]

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

    def _micro_batches(self, n: int) -> list[np.ndarray]:
        """Row ranges of at most ``micro_batch_size``, padded with empty ones under FSDP.

        Every forward of a sharded model is a collective, so every rank runs as many.
        """
        size = self.cfg.micro_batch_size
        chunks = [np.arange(s, min(n, s + size)) for s in range(0, n, size)]
        count = len(chunks)
        if self.fsdp:
            count = int(all_reduce_max(count, self.dist))
        return chunks + [np.arange(0)] * (count - len(chunks))

    def advantages(self, batch: RolloutBatch, group_size: int) -> np.ndarray:
        """Per-row advantages: each episode's group advantage, on every turn of it."""
        rewards = torch.as_tensor(batch.episode_rewards, dtype=torch.float32)
        adv = group_advantages(rewards, group_size, normalize_std=self.cfg.normalize_std)
        return adv.numpy()[batch.episode]

    def _micro_batch(
        self, batch: RolloutBatch, rows: np.ndarray, adv: np.ndarray
    ) -> tuple[torch.Tensor, dict[str, float], int]:
        prompts, ids, mask, old = completion_batch(
            self.vlm, [batch.requests[i] for i in rows], [batch.samples[i] for i in rows]
        )
        logprobs, entropy = completion_logprobs(self.forward_vlm, prompts, ids, mask)
        ref = None
        if self.reference is not None and self.cfg.kl_coef > 0:
            with torch.no_grad():
                ref, _ = completion_logprobs(self.reference, prompts, ids, mask)
        device = logprobs.device
        sampled = old.to(device)
        old_lp = logprobs.detach() if self.cfg.old_logprobs == "recompute" else sampled
        loss, metrics = grpo_loss(
            logprobs,
            old_lp,
            torch.as_tensor(adv[rows], device=device),
            mask.to(device),
            ref_logprobs=ref,
            kl_coef=self.cfg.kl_coef,
            clip_eps=self.cfg.clip_eps,
            aggregation=self.cfg.aggregation,  # type: ignore[arg-type]
            entropy=entropy.detach(),
        )
        valid = mask.to(device).bool()
        gap = (logprobs.detach() - sampled).abs()[valid]
        metrics["sampler/logprob_gap_max"] = float(gap.max()) if gap.numel() else 0.0
        return loss, metrics, int(mask.sum())

    def step(self, batch: RolloutBatch, group_size: int) -> dict[str, float]:
        """One optimizer step on the whole batch; returns namespaced metrics."""
        self.vlm.model.train()
        adv = self.advantages(batch, group_size)
        n = len(batch.samples)
        # each micro-batch's share of the global batch; DDP and FSDP average over ranks,
        # hence x world
        world = self.dist.world
        total_tokens = max(1.0, all_reduce_sum(batch.num_tokens, self.dist))
        total_rows = max(1.0, all_reduce_sum(n, self.dist))
        sums: dict[str, float] = {}
        chunks = self._micro_batches(n)
        for index, rows in enumerate(chunks):
            padding = len(rows) == 0  # FSDP only: a weightless pass so every rank joins in
            with self._sync(index == len(chunks) - 1):
                loss, metrics, tokens = self._micro_batch(
                    batch, np.arange(1) if padding else rows, adv
                )
                share = (
                    tokens / total_tokens
                    if self.cfg.aggregation == "token_mean"
                    else (len(rows) / total_rows)
                )
                share = 0.0 if padding else share
                (loss * share * world).backward()
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value * share * world
        params = [p for p in self.vlm.model.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
        if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP
            grad_norm = grad_norm.full_tensor()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.vlm.model.eval()
        return {
            **all_reduce_mean(sums, self.dist),
            "learner/grad_norm": float(grad_norm),
            "learner/lr": self.optimizer.param_groups[0]["lr"],
        }
