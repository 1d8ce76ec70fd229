"""Loading a local vision-language model and scoring completions with it.

One small surface that the samplers and the learner share:

- `load_vlm(path)` loads any LOCAL checkpoint directory (never the Hub, never remote code)
  into a `VLM` bundle that also knows the tokens to suppress while sampling (image
  placeholders) and the tokens that end a completion.
- `chat_messages` / `prompt_text` render a puzzle prompt (images first, then the text, then
  optional multi-turn history) with the checkpoint's own chat template.
- `encode` tokenizes a batch of prompts with their images, LEFT padded.
- `completion_logprobs` scores given completion tokens after those prompts in one forward
  pass, differentiably.

Design notes:

- Position ids under padding: Llama-style decoders (Idefics3/SmolVLM) count positions from
  the first column unless told otherwise, so a left-padded prompt would start at position
  `num_pad`. `completion_logprobs` passes `cumsum(attention_mask) - 1`. Qwen2.5-VL computes
  its 3D (M-RoPE) positions itself from `attention_mask`, `image_grid_thw` and
  `mm_token_type_ids`, so for a batch with images it gets no position ids, and the token
  type ids are extended with zeros over the completion.
- Logit shift: the logits at column `t` predict token `t + 1`. With the prompt left padded
  to `P` columns and the completion right padded to `T`, completion token `j` sits at column
  `P + j` and is predicted by column `P + j - 1`, so we keep the last `T + 1` logit columns
  (`logits_to_keep`) and drop the last one.
- Qwen2.5-VL without torchvision: `Qwen2_5_VLProcessor` insists on a video processor,
  which needs torchvision (not installed here, it breaks transformers' image code).
  `Qwen2_5_VLImageOnlyProcessor` drops the video processor; `load_processor` uses it when
  torchvision is missing, so checkpoints keep the standard processor class name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.utils.checkpoint
from PIL import Image
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    BatchFeature,
    PreTrainedModel,
    ProcessorMixin,
)
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.utils import is_torchvision_available
from transformers.utils import logging as hf_logging

PLACEHOLDER_TOKENS = (
    "<image>",
    "<fake_token_around_image>",
    "<global-img>",
    *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)),
    "<|image_pad|>",
    "<|video_pad|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<video>",
)
"""Vision placeholder tokens of the supported families, suppressed while sampling."""

END_OF_TURN_TOKENS = ("<end_of_utterance>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>")
"""Tokens that end an assistant turn in the supported families."""

_PLACEHOLDER_CONFIG_IDS = (
    "image_token_id",
    "image_token_index",
    "video_token_id",
    "vision_start_token_id",
    "vision_end_token_id",
)
_TOKEN_ALIGNED_EXTRAS = ("mm_token_type_ids", "token_type_ids")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_ROLES = ("assistant", "user")


class Qwen2_5_VLImageOnlyProcessor(Qwen2_5_VLProcessor):  # noqa: N801 (transformers' naming)
    """`Qwen2_5_VLProcessor` without the video processor, so it works without torchvision.

    Images only: passing `videos=` is not supported. Saved directories should keep the
    standard `Qwen2_5_VLProcessor` class name (see `agents.tiny`); `load_processor` picks
    this class when torchvision is missing.
    """

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template)


_IMAGE_ONLY_PROCESSORS: dict[str, type[ProcessorMixin]] = {
    "qwen2_5_vl": Qwen2_5_VLImageOnlyProcessor
}


@dataclass
class VLM:
    """A loaded vision-language model and what sampling and scoring need to know about it."""

    model: PreTrainedModel
    """The `AutoModelForImageTextToText` model, in eval mode."""
    processor: Any
    """The checkpoint's processor (tokenizer + image processor + chat template)."""
    tokenizer: Any
    """The processor's tokenizer (padding side left)."""
    path: Path
    """The checkpoint directory."""
    arch: str
    """The config's `model_type`, e.g. `"idefics3"` or `"qwen2_5_vl"`."""
    placeholder_token_ids: tuple[int, ...]
    """Image/vision placeholder tokens that must never be sampled."""
    eos_token_ids: tuple[int, ...]
    """Tokens that end a completion (end of turn and end of text)."""
    pad_token_id: int
    """Token used to pad completions and prompts."""

    @property
    def device(self) -> torch.device:
        """The device the model's parameters are on."""
        return self.model.device


def _missing_weights_message(path: str | Path, checked: Path) -> str:
    """Explains that weights must be local, and how to get them there."""
    text = str(path)
    lines = [f"Model weights must be on local disk; no model directory at {checked}."]
    if _HUB_ID.match(text):
        lines.append(
            f"{text!r} looks like a Hugging Face Hub id; this project never downloads. On a "
            f"machine with internet run `huggingface-cli download {text} --local-dir DIR`, "
            "copy DIR here and pass its path."
        )
    else:
        lines.append(
            "Pass the directory of a checkpoint saved with `save_pretrained` (or fetched with "
            "`huggingface-cli download REPO --local-dir DIR` on a machine with internet)."
        )
    lines.append("For a tiny random test model run `ssl-gym make-tiny-model DIR`.")
    return " ".join(lines)


def resolve_local_dir(path: str | Path) -> Path:
    """Returns the checkpoint directory `path`, or raises a clear error if it is not one.

    Raises:
        FileNotFoundError: If `path` is not a directory with a `config.json` (for instance a
            Hub id such as `"HuggingFaceTB/SmolVLM-256M"` that is not also a local path).
    """
    checked = Path(path).expanduser().resolve()
    if not (checked / "config.json").is_file():
        raise FileNotFoundError(_missing_weights_message(path, checked))
    return checked


def spend_default_config_warnings(path: str | Path) -> None:
    """Builds the default config of a checkpoint's family once, transformers' logs muted.

    Loading a config logs it (``Model config ...``: formatted even with info logs off),
    and formatting diffs it against the family's default config, built then and there.
    The default ``Idefics3Config`` pairs Llama's 32000-token vocabulary with pad id
    128002, so the first Idefics3 load of a process warned ``pad_token_id must be `None`
    or an integer within the vocabulary (between 0 and 31999), got 128002`` about a config
    that is no checkpoint's. That warning is a ``warning_once``: building the default
    here, muted, spends it, while warnings about a checkpoint's own ids (its numbers, so
    other messages) still print. Every loader of this module calls it first; it does
    nothing for a family transformers does not know.
    """
    try:
        model_type = json.loads((Path(path) / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        return
    config_class = CONFIG_MAPPING[model_type]
    if config_class.has_no_defaults_at_init:
        return
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        config_class()
    except Exception:  # a family whose defaults do not build: nothing to spend
        pass
    finally:
        hf_logging.set_verbosity(verbosity)


def load_processor(path: str | Path) -> Any:
    """Loads the processor of a local checkpoint, image-only for Qwen2.5-VL without torchvision."""
    root = resolve_local_dir(path)
    spend_default_config_warnings(root)
    model_type = AutoConfig.from_pretrained(
        root, local_files_only=True, trust_remote_code=False
    ).model_type
    if model_type in _IMAGE_ONLY_PROCESSORS and not is_torchvision_available():
        processor = _IMAGE_ONLY_PROCESSORS[model_type].from_pretrained(
            root, local_files_only=True, trust_remote_code=False
        )
    else:
        processor = AutoProcessor.from_pretrained(
            root, local_files_only=True, trust_remote_code=False
        )
    processor.tokenizer.padding_side = "left"
    return processor


def _as_ids(value: int | Sequence[int] | None) -> list[int]:
    """Normalizes a config token id field (None, int or list) to a list."""
    if value is None:
        return []
    return [int(value)] if isinstance(value, int) else [int(v) for v in value]


def _unique(ids: Sequence[int]) -> tuple[int, ...]:
    """Deduplicates ids, keeping the first occurrence's order."""
    return tuple(dict.fromkeys(ids))


def _placeholder_ids(model: PreTrainedModel, vocab: dict[str, int]) -> tuple[int, ...]:
    """Vision placeholder ids from the config and from the known placeholder token names."""
    ids = [vocab[t] for t in PLACEHOLDER_TOKENS if t in vocab]
    for field in _PLACEHOLDER_CONFIG_IDS:
        ids += _as_ids(getattr(model.config, field, None))
    return _unique(sorted(ids))


def _eos_ids(model: PreTrainedModel, tokenizer: Any, vocab: dict[str, int]) -> tuple[int, ...]:
    """End-of-completion ids: generation config eos, tokenizer eos, known end-of-turn tokens."""
    generation_config = getattr(model, "generation_config", None)
    ids = _as_ids(getattr(generation_config, "eos_token_id", None))
    ids += _as_ids(tokenizer.eos_token_id)
    ids += [vocab[t] for t in END_OF_TURN_TOKENS if t in vocab]
    return _unique(ids)


def load_vlm(path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> VLM:
    """Loads a local vision-language checkpoint directory.

    Args:
        path: Directory written by `save_pretrained` (or `huggingface-cli download
            --local-dir`, or `agents.tiny.build_tiny_model`). Hub ids are refused.
        device: Torch device to move the model to.
        dtype: Parameter dtype.

    Returns:
        The model (eval mode), processor and special token ids.

    Raises:
        FileNotFoundError: If `path` is not a local checkpoint directory.
    """
    root = resolve_local_dir(path)
    spend_default_config_warnings(root)
    model = AutoModelForImageTextToText.from_pretrained(
        root, dtype=dtype, local_files_only=True, trust_remote_code=False
    )
    model.to(device)  # type: ignore[arg-type]  # (mypy misreads the decorated `to`)
    return wrap_model(model, root)


def wrap_model(model: PreTrainedModel, path: str | Path) -> VLM:
    """A model already in memory (random weights from a config, say) as a :class:`VLM`.

    The processor and special tokens come from the checkpoint directory ``path``; the
    model is put in eval mode.
    """
    root = resolve_local_dir(path)
    processor = load_processor(root)
    model.eval()
    tokenizer = processor.tokenizer
    vocab = tokenizer.get_vocab()
    eos = _eos_ids(model, tokenizer, vocab)
    pad = tokenizer.pad_token_id
    return VLM(
        model=model,
        processor=processor,
        tokenizer=tokenizer,
        path=root,
        arch=str(model.config.model_type),
        placeholder_token_ids=_placeholder_ids(model, vocab),
        eos_token_ids=eos,
        pad_token_id=int(pad if pad is not None else eos[0]),
    )


def chat_messages(
    prompt: str, num_images: int, history: Sequence[tuple[str, str]] = ()
) -> list[dict[str, Any]]:
    """Builds chat messages: a user turn with `num_images` images then the prompt, then history.

    Args:
        prompt: Text of the first user turn (after its images).
        num_images: Number of image parts at the start of the first user turn.
        history: Later turns as `(role, text)`, alternating `"assistant"` and `"user"`,
            starting with `"assistant"` (multi-turn play: answer, hint, answer, ...).

    Returns:
        Messages in the content-parts format processors' chat templates expect.

    Raises:
        ValueError: If `num_images` is negative or the history roles do not alternate.
    """
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(num_images)]
    content.append({"type": "text", "text": prompt})
    messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
    for i, (role, text) in enumerate(history):
        expected = _ROLES[i % 2]
        if role != expected:
            raise ValueError(
                f"history turn {i} has role {role!r}; expected {expected!r} "
                "(turns alternate assistant, user, ... after the first user turn)"
            )
        messages.append({"role": role, "content": [{"type": "text", "text": text}]})
    return messages


def prompt_text(
    vlm: VLM, prompt: str, num_images: int, history: Sequence[tuple[str, str]] = ()
) -> str:
    """Renders `chat_messages(...)` with the checkpoint's chat template and generation prompt."""
    messages = chat_messages(prompt, num_images, history)
    text = vlm.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return str(text)


def _to_pil(image: np.ndarray) -> Image.Image:
    """Converts a uint8 (H, W, 3) array to a PIL image (no channel-order guessing later)."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(
            f"images must be uint8 arrays of shape (H, W, 3), got {array.dtype} {array.shape}"
        )
    return Image.fromarray(array, mode="RGB")


def encode(vlm: VLM, texts: Sequence[str], images: Sequence[Sequence[np.ndarray]]) -> BatchFeature:
    """Tokenizes prompts with their images, left padded, on the model's device.

    Args:
        vlm: The loaded model.
        texts: Prompts as rendered by `prompt_text` (one placeholder per image).
        images: For each prompt, its images (uint8 (H, W, 3)); counts may differ, 0 included.

    Returns:
        `input_ids`, `attention_mask` and the pixel inputs of the family (Idefics3:
        `pixel_values`, `pixel_attention_mask`; Qwen2.5-VL: `pixel_values`,
        `image_grid_thw`, `mm_token_type_ids`).

    Raises:
        ValueError: If `texts` and `images` differ in length or an image is malformed.
    """
    if len(texts) != len(images):
        raise ValueError(f"got {len(texts)} texts but {len(images)} image lists")
    nested = [[_to_pil(image) for image in per_prompt] for per_prompt in images]
    kwargs: dict[str, Any] = {"images": nested} if any(nested) else {}
    batch = vlm.processor(
        text=list(texts), padding=True, padding_side="left", return_tensors="pt", **kwargs
    )
    return batch.to(vlm.device, dtype=vlm.model.dtype)


def _position_ids(vlm: VLM, batch: dict[str, Any], mask: torch.Tensor) -> torch.Tensor | None:
    """Position ids that ignore left padding; None where the model derives 3D M-RoPE ids."""
    if batch.get("image_grid_thw") is not None or batch.get("video_grid_thw") is not None:
        return None
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def completion_logprobs(
    vlm: VLM,
    prompt_batch: BatchFeature | dict[str, Any],
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities and entropies of completion tokens continuing left-padded prompts.

    One forward pass over `[prompt ; completion]` with the prompts' pixel inputs. Gradients
    flow when called with grad enabled (learner); wrap in `torch.no_grad()` to sample.

    Args:
        vlm: The loaded model.
        prompt_batch: Output of `encode` (left padded).
        completion_ids: (B, T) completion token ids, right padded.
        completion_mask: (B, T) 1 for real completion tokens, 0 for padding.
        temperature: Logits are divided by it before the softmax (match the sampler's).

    Returns:
        `(logprobs, entropies)`, both float32 (B, T), zero where `completion_mask` is 0.

    Raises:
        ValueError: If the shapes do not match or `temperature` is not positive.
    """
    batch = dict(prompt_batch)
    prompt_ids, prompt_mask = batch.pop("input_ids"), batch.pop("attention_mask")
    if completion_ids.shape != completion_mask.shape or completion_ids.ndim != 2:
        raise ValueError(
            f"completion ids {tuple(completion_ids.shape)} and mask "
            f"{tuple(completion_mask.shape)} must both be (B, T)"
        )
    if completion_ids.shape[0] != prompt_ids.shape[0]:
        raise ValueError(f"{completion_ids.shape[0]} completions for {prompt_ids.shape[0]} prompts")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    completion_ids = completion_ids.to(prompt_ids.device, prompt_ids.dtype)
    completion_mask = completion_mask.to(prompt_mask.device, prompt_mask.dtype)
    mask = torch.cat([prompt_mask, completion_mask], dim=1)
    for key in _TOKEN_ALIGNED_EXTRAS:
        if batch.get(key) is not None:
            batch[key] = torch.cat([batch[key], torch.zeros_like(completion_ids)], dim=1)
    steps = completion_ids.shape[1]
    out = vlm.model(
        input_ids=torch.cat([prompt_ids, completion_ids], dim=1),
        attention_mask=mask,
        position_ids=_position_ids(vlm, batch, mask),
        use_cache=False,
        logits_to_keep=steps + 1,
        **batch,
    )
    logprobs, entropies = token_logprobs_entropies(out.logits[:, :-1], completion_ids, temperature)
    keep = completion_mask.to(logprobs.dtype)
    return logprobs * keep, entropies * keep


#: Tokens per chunk of :func:`token_logprobs_entropies` (1024 x a 152k vocabulary in fp32
#: is 0.6 GiB, against 10 GiB for a micro-batch of 8 x 2048 tokens at once).
LOGPROB_CHUNK_TOKENS = 1024


def _chunk_stats(
    logits: torch.Tensor, ids: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    x = logits.float() / temperature
    norm = x.logsumexp(dim=-1)
    picked = x.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - norm
    entropy = norm - (x.softmax(dim=-1) * x).sum(-1)
    return picked, entropy


def token_logprobs_entropies(
    logits: torch.Tensor, ids: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of ``ids`` and entropies under ``logits / temperature``, float32 ``(B, T)``.

    Computed over chunks of :data:`LOGPROB_CHUNK_TOKENS` tokens, each recomputed in the
    backward pass (activation checkpointing) when gradients flow: no fp32 copy of the
    whole ``(B, T, vocab)`` logits is ever held, only the logits in their own dtype and
    one chunk.
    """
    b, t, v = logits.shape
    flat, flat_ids = logits.reshape(b * t, v), ids.reshape(b * t)
    parts = []
    for start in range(0, b * t, LOGPROB_CHUNK_TOKENS):
        chunk = (
            flat[start : start + LOGPROB_CHUNK_TOKENS],
            flat_ids[start : start + LOGPROB_CHUNK_TOKENS],
        )
        if torch.is_grad_enabled() and logits.requires_grad:
            parts.append(
                torch.utils.checkpoint.checkpoint(
                    _chunk_stats, *chunk, temperature, use_reentrant=False
                )
            )
        else:
            parts.append(_chunk_stats(*chunk, temperature))
    picked = torch.cat([p[0] for p in parts]).reshape(b, t)
    entropy = torch.cat([p[1] for p in parts]).reshape(b, t)
    return picked, entropy
