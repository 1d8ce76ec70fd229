"""Sampling with transformers: the CPU (and small-GPU) sampler.

``HFSampler`` batches requests through ``model.generate`` with a logits processor that
suppresses image placeholder tokens and, when asked, keeps every completion inside the
puzzle's answer grammar (choices as allowed token sequences, patterns through a
partial-match regular expression). Per-token log-probabilities are those of the raw,
unconstrained policy at the sampling temperature (logits / T; greedy counts as T = 1),
i.e. exactly what the learner recomputes at that temperature.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from agents.models import VLM, encode, prompt_text
from agents.samplers.base import Request, Sample, SamplingParams
from agents.samplers.grammar import GrammarConstraint


class ConstrainedLogits(LogitsProcessor):
    """Mask placeholder tokens always, and tokens outside the grammar when constrained."""

    def __init__(
        self,
        vlm: VLM,
        prompt_len: int,
        constraints: Sequence[GrammarConstraint | None],
        n: int,
        vocab: Sequence[str],
    ) -> None:
        self.suppress = list(vlm.placeholder_token_ids)
        self.eos = list(vlm.eos_token_ids)
        self.prompt_len, self.constraints, self.n, self.vocab = prompt_len, constraints, n, vocab

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Return a copy of ``scores`` with disallowed tokens set to -inf.

        A copy: generate keeps the tensor it passes in as the raw logits, from which the
        sampler's logprobs are computed.
        """
        scores = scores.clone()  # type: ignore[assignment]
        scores[:, self.suppress] = -torch.inf
        for row in range(scores.shape[0]):
            constraint = self.constraints[row // self.n]
            if constraint is None:
                continue
            prefix = input_ids[row, self.prompt_len :].tolist()
            allowed, may_end = constraint.allowed(prefix, self.vocab)
            keep = allowed + (self.eos if may_end or not allowed else [])
            mask = torch.full_like(scores[row], -torch.inf)
            mask[keep] = 0.0
            scores[row] = scores[row] + mask
        return scores


class HFSampler:
    """Batched sampling from a local VLM with transformers."""

    def __init__(self, vlm: VLM, batch_size: int = 64) -> None:
        self.vlm = vlm
        self.batch_size = batch_size
        self._vocab: list[str] | None = None

    def load_weights(self, model: torch.nn.Module) -> None:
        """The HF sampler samples from the learner's own module: nothing to copy."""
        if model is not self.vlm.model:
            self.vlm.model.load_state_dict(model.state_dict())

    @property
    def vocab(self) -> list[str]:
        """Each token id decoded on its own (for pattern constraints)."""
        if self._vocab is None:
            size = self.vlm.model.get_output_embeddings().weight.shape[0]
            tok = self.vlm.tokenizer
            self._vocab = [tok.decode([i]) if i < len(tok) else "" for i in range(size)]
        return self._vocab

    def sample(self, requests: Sequence[Request], params: SamplingParams) -> list[list[Sample]]:
        """``params.n`` completions for every request."""
        out: list[list[Sample]] = []
        with torch.random.fork_rng(devices=[]):
            if params.seed is not None:
                torch.manual_seed(params.seed)
            for start in range(0, len(requests), self.batch_size):
                out.extend(self._sample_batch(requests[start : start + self.batch_size], params))
        return out

    def _constraint(self, req: Request, params: SamplingParams) -> GrammarConstraint | None:
        if not params.constrain or not req.constrained:
            return None
        choices, pattern = req.grammar
        return GrammarConstraint(self.vlm.tokenizer, choices, pattern)

    @torch.no_grad()
    def _sample_batch(self, reqs: Sequence[Request], params: SamplingParams) -> list[list[Sample]]:
        vlm = self.vlm
        texts = [prompt_text(vlm, r.prompt, len(r.images), r.history) for r in reqs]
        batch = encode(vlm, texts, [list(r.images) for r in reqs])
        prompt_len = batch["input_ids"].shape[1]
        constraints = [self._constraint(r, params) for r in reqs]
        processor = ConstrainedLogits(
            vlm, prompt_len, constraints, params.n, self.vocab if any(constraints) else []
        )
        greedy = params.temperature == 0
        gen = vlm.model.generate(  # type: ignore[operator]
            **batch,
            do_sample=not greedy,
            temperature=None if greedy else params.temperature,
            top_p=None if greedy else params.top_p,
            top_k=None,
            max_new_tokens=params.max_new_tokens,
            num_return_sequences=params.n,
            logits_processor=LogitsProcessorList([processor]),
            eos_token_id=list(vlm.eos_token_ids),
            pad_token_id=vlm.pad_token_id,
            return_dict_in_generate=True,
            output_logits=True,
            # an FSDP policy is sampled inside Learner.full_weights (every weight gathered),
            # so ranks need not step in lockstep as transformers assumes for sharded models
            synced_gpus=False,
        )
        tokens = gen.sequences[:, prompt_len:]
        temperature = params.temperature if params.temperature > 0 else 1.0
        logprobs = (torch.stack(gen.logits, dim=1).float() / temperature).log_softmax(-1)
        picked = logprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        samples = [self._to_sample(tokens[i], picked[i]) for i in range(tokens.shape[0])]
        return [samples[i * params.n : (i + 1) * params.n] for i in range(len(reqs))]

    def _to_sample(self, tokens: torch.Tensor, logprobs: torch.Tensor) -> Sample:
        ids = tokens.tolist()
        eos = set(self.vlm.eos_token_ids)
        end = next((i for i, t in enumerate(ids) if t in eos), None)
        finish = "length" if end is None else "stop"
        keep = len(ids) if end is None else end + 1  # the stop token is part of the completion
        text = self.vlm.tokenizer.decode(
            ids[: keep if end is None else end], skip_special_tokens=True
        )
        return Sample(text, ids[:keep], logprobs[:keep].tolist(), finish)
