"""Tiny random vision-language models, built offline, for tests and CPU smoke runs.

`build_tiny_model` writes a directory that looks like any Hugging Face checkpoint of the
chosen family (config, safetensors weights, tokenizer, processor, chat template,
generation config) and reloads with `agents.models.load_vlm` (or `AutoProcessor` /
`AutoModelForImageTextToText`), so every code path that takes a real checkpoint can be
exercised in seconds without network access. The weights are random, so the completions
are gibberish; what matters is that shapes, special tokens, padding and positions are the
real family's.

Design notes:

- Tokenizer: a byte-level BPE trained on the fly on a small built-in corpus (English words,
  digits, punctuation, typical puzzle answers), with the family's special tokens added as
  atomic tokens, wrapped as a `PreTrainedTokenizerFast`. Byte-level means any string
  round-trips, so puzzle parsers see exactly what the model sampled.
- Sizes: 2 text layers, hidden 64, 2 heads of 32 (vLLM's CPU attention needs head_dim >= 32),
  a 2-layer vision tower of width 64. An image of `image_size` pixels is 4 placeholder tokens
  (Idefics3: patch 16, pixel shuffle 2, no image splitting; Qwen2.5-VL: patch 14, merge 2).
- Qwen2.5-VL's processor wants a video processor, which needs torchvision. The directory
  is saved with the standard `Qwen2_5_VLProcessor` class name and a video processor config
  (so `AutoProcessor` and vLLM load it where torchvision is installed); without torchvision,
  `agents.models.load_processor` loads it with the image-only subclass
  `Qwen2_5_VLImageOnlyProcessor`.
- Seeded: the weights are drawn under `torch.random.fork_rng` with `manual_seed(seed)`, so the
  same seed gives identical weights and the caller's global RNG state is untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForImageTextToText,
    GenerationConfig,
    Idefics3Config,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
)
from transformers.models.idefics3 import Idefics3ImageProcessorPil, Idefics3Processor
from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil
from transformers.utils import logging as hf_logging

from agents.models import Qwen2_5_VLImageOnlyProcessor

ARCHS = ("idefics3", "qwen2_5_vl")
"""Model families `build_tiny_model` can build."""

VOCAB_SIZE = 768
"""Target size of the trained BPE vocabulary (the small corpus may yield a few less)."""

TEXT_DIMS: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
}
"""Language model sizes shared by both families (head_dim = 64 / 2 = 32)."""

VISION_DIMS: dict[str, Any] = {"hidden_size": 64, "intermediate_size": 128}
"""Vision tower sizes shared by both families."""

INIT_STD = 0.2
"""Weight init std, 10x the usual 0.02 so that next-token distributions are far from uniform
(entropy about 5.4 nats of 6.6): tests then see wrong positions or shifts, and sampling still
varies."""

_WORDS = """
the a an of to in on at by for with from and or not no yes is are was be this that which
what where who how many much one two three four five six seven eight nine ten zero
image images picture pictures photo tile tiles piece pieces patch patches grid row column
rows columns left right top bottom middle center centre corner up down above below
rotate rotated rotation degrees clockwise counterclockwise angle flip flipped mirror
same different original order permutation position positions first second third last
answer question think reasoning step because so then therefore final choose option
options pair pairs match matches color colour colors gray grey red green blue
brighter darker contrast blur blurred noise crop cropped zoom inpaint missing region
shuffled jigsaw puzzle puzzles positive negative true false correct wrong hint hints
User Assistant user assistant system You are a helpful please look carefully output
format only number numbers list sequence label labels index A B C D E F
"""

_ANSWERS = """
0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 90 180 270 360 0,1,2 1,2,3 2,0,1 3,1,2,0
0 90 180 270 top-left top-right bottom-left bottom-right top-center middle-left
positive negative same different yes no A B C D (A) (B) (C) (D) [1, 2, 3] [0, 1]
<think> </think> <answer> </answer> \\boxed{1} \\boxed{90} \\boxed{top-left}
The answer is 90. The answer is 3,1,2,0. I think the image is rotated by 180 degrees.
. , ; : ! ? ( ) [ ] { } - + = * / _ ' " # % & < > | @ $ ~
"""

_CORPUS = (_WORDS + "\n" + _ANSWERS).strip().splitlines()

_IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}"
    "{% else %}{% if message['content'][0]['type'] == 'image' %}{{ ':' }}"
    "{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
"""SmolVLM / Idefics3 chat template: `<|im_start|>User:<image>...<end_of_utterance>`."""

_QWEN_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen2.5-VL ChatML template (the released one)."""

_IDEFICS3_PATCH = 16
_IDEFICS3_SCALE = 2
_QWEN_PATCH = 14
_QWEN_MERGE = 2

_IDEFICS3_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
    *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)),
)
_QWEN_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


@dataclass
class _Parts:
    """What a family builder returns: the pieces `build_tiny_model` saves."""

    config: Any
    processor: Any
    generation_config: GenerationConfig
    after_save: Callable[[Path], None] | None = None


def _train_tokenizer(special_tokens: tuple[str, ...]) -> Tokenizer:
    """Trains a byte-level BPE on the built-in corpus, special tokens first (ids 0..k-1)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer)
    return tok


def _fast_tokenizer(
    special_tokens: tuple[str, ...], chat_template: str, **roles: str
) -> PreTrainedTokenizerFast:
    """Wraps a freshly trained BPE with the family's special-token roles and chat template."""
    return PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(special_tokens),
        chat_template=chat_template,
        model_max_length=TEXT_DIMS["max_position_embeddings"],
        padding_side="left",
        **roles,
    )


def _ids(tokenizer: PreTrainedTokenizerFast, *tokens: str) -> list[int]:
    """Ids of tokens that must exist in the vocabulary."""
    vocab = tokenizer.get_vocab()
    return [vocab[t] for t in tokens]


def _generation_config(
    tokenizer: PreTrainedTokenizerFast, eos: list[int], bos: int | None
) -> GenerationConfig:
    """Greedy-by-default generation config that stops on any end-of-turn token."""
    return GenerationConfig(
        bos_token_id=bos, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silences transformers' progress bars and its warning about its own default config.

    (Saving diffs the config against a default `Idefics3Config`, whose default text config
    has a pad id outside its own vocabulary.)
    """
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _edit_json(path: Path, updates: dict[str, Any]) -> None:
    """Sets top-level keys of a JSON file."""
    data = json.loads(path.read_text())
    data.update(updates)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


# --- Idefics3 (SmolVLM) ------------------------------------------------------------------


def _idefics3_config(tokenizer: PreTrainedTokenizerFast, image_size: int) -> Idefics3Config:
    """Llama text model + SigLIP-style vision tower, 4 image tokens per `image_size` image."""
    bos, eou, pad, image = _ids(
        tokenizer, "<|im_start|>", "<end_of_utterance>", "<|im_end|>", "<image>"
    )
    text_config = {
        "model_type": "llama",
        "vocab_size": len(tokenizer),
        **TEXT_DIMS,
        "head_dim": TEXT_DIMS["hidden_size"] // TEXT_DIMS["num_attention_heads"],
        "rms_norm_eps": 1e-5,
        "initializer_range": INIT_STD,
        "bos_token_id": bos,
        "eos_token_id": eou,
        "pad_token_id": pad,
        "tie_word_embeddings": False,
    }
    vision_config = {
        **VISION_DIMS,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": image_size,
        "patch_size": _IDEFICS3_PATCH,
    }
    return Idefics3Config(
        text_config=text_config,
        vision_config=vision_config,
        scale_factor=_IDEFICS3_SCALE,
        image_token_id=image,
        pad_token_id=pad,
        tie_word_embeddings=False,
    )


def _idefics3_parts(image_size: int) -> _Parts:
    """Idefics3 config, processor (no image splitting) and generation config."""
    step = _IDEFICS3_PATCH * _IDEFICS3_SCALE
    if image_size < step or image_size % step:
        raise ValueError(
            f"idefics3 image_size must be a positive multiple of {step}, got {image_size}"
        )
    tokenizer = _fast_tokenizer(
        _IDEFICS3_SPECIALS,
        _IDEFICS3_TEMPLATE,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False,
        size={"longest_edge": image_size},
        max_image_size={"longest_edge": image_size},
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=(image_size // step) ** 2,
        chat_template=_IDEFICS3_TEMPLATE,
    )
    eos = _ids(tokenizer, "<end_of_utterance>", "<|im_end|>")
    bos = _ids(tokenizer, "<|im_start|>")[0]
    return _Parts(
        _idefics3_config(tokenizer, image_size), processor, _generation_config(tokenizer, eos, bos)
    )


# --- Qwen2.5-VL --------------------------------------------------------------------------


def _qwen2_5_vl_config(tokenizer: PreTrainedTokenizerFast) -> Qwen2_5_VLConfig:
    """Qwen2 text model with M-RoPE + windowed ViT (layer 0 windowed, layer 1 full)."""
    eot, im_end, v_start, v_end, image, video = _ids(
        tokenizer,
        "<|endoftext|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    )
    head_dim = TEXT_DIMS["hidden_size"] // TEXT_DIMS["num_attention_heads"]
    text_config = {
        "vocab_size": len(tokenizer),
        **TEXT_DIMS,
        "rms_norm_eps": 1e-6,
        "initializer_range": INIT_STD,
        "max_window_layers": TEXT_DIMS["num_hidden_layers"],
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            # (temporal, height, width) split of head_dim / 2, the released 2:3:3 ratio.
            "mrope_section": [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16],
        },
        "bos_token_id": eot,
        "eos_token_id": im_end,
        "pad_token_id": eot,
        "tie_word_embeddings": False,
    }
    vision_config = {
        **VISION_DIMS,
        "depth": 2,
        "num_heads": 2,
        "patch_size": _QWEN_PATCH,
        "spatial_merge_size": _QWEN_MERGE,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [1],
        "out_hidden_size": TEXT_DIMS["hidden_size"],
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=image,
        video_token_id=video,
        vision_start_token_id=v_start,
        vision_end_token_id=v_end,
        tie_word_embeddings=False,
    )


def _standardize_qwen_processor_config(out_dir: Path) -> None:
    """Rewrites the saved processor config as the standard `Qwen2_5_VLProcessor` one.

    Names the standard class and adds a video processor section mirroring the image
    processor, so that `AutoProcessor` (and vLLM) load the directory like a released
    Qwen2.5-VL checkpoint where torchvision is installed.
    """
    path = out_dir / "processor_config.json"
    image = json.loads(path.read_text())["image_processor"]
    image["processor_class"] = "Qwen2_5_VLProcessor"
    video = {
        "video_processor_type": "Qwen2VLVideoProcessor",
        "processor_class": "Qwen2_5_VLProcessor",
        **{k: image[k] for k in ("size", "patch_size", "merge_size", "temporal_patch_size")},
        **{k: image[k] for k in ("image_mean", "image_std") if k in image},
    }
    standard = {"processor_class": "Qwen2_5_VLProcessor"}
    _edit_json(path, {**standard, "image_processor": image, "video_processor": video})
    _edit_json(out_dir / "tokenizer_config.json", standard)


def _qwen2_5_vl_parts(image_size: int) -> _Parts:
    """Qwen2.5-VL config, image-only processor (at most `image_size**2` pixels an image)."""
    factor = _QWEN_PATCH * _QWEN_MERGE
    if image_size < factor:
        raise ValueError(f"qwen2_5_vl image_size must be >= {factor}, got {image_size}")
    tokenizer = _fast_tokenizer(
        _QWEN_SPECIALS, _QWEN_TEMPLATE, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=factor * factor,
        max_pixels=image_size * image_size,
        patch_size=_QWEN_PATCH,
        merge_size=_QWEN_MERGE,
        temporal_patch_size=2,
    )
    processor = Qwen2_5_VLImageOnlyProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=_QWEN_TEMPLATE
    )
    eos = _ids(tokenizer, "<|im_end|>", "<|endoftext|>")
    return _Parts(
        _qwen2_5_vl_config(tokenizer),
        processor,
        _generation_config(tokenizer, eos, None),
        after_save=_standardize_qwen_processor_config,
    )


_BUILDERS: dict[str, Callable[[int], _Parts]] = {
    "idefics3": _idefics3_parts,
    "qwen2_5_vl": _qwen2_5_vl_parts,
}


def build_tiny_model(
    out_dir: str | Path, arch: str = "idefics3", seed: int = 0, image_size: int = 64
) -> Path:
    """Builds a tiny random VLM of the given family and saves it like a checkpoint.

    Args:
        out_dir: Directory to write (created if needed; existing files are overwritten).
        arch: Model family, one of `ARCHS`: `"idefics3"` (SmolVLM) or `"qwen2_5_vl"`.
        seed: Seed of the random weights; the same seed gives identical weights.
        image_size: Side in pixels images are resized to (Idefics3: a multiple of 32;
            Qwen2.5-VL: the longest side of the pixel budget, at least 28).

    Returns:
        The directory, loadable with `agents.models.load_vlm`.

    Raises:
        ValueError: If `arch` is unknown or `image_size` does not fit the family.
    """
    if arch not in _BUILDERS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {list(ARCHS)}")
    parts = _BUILDERS[arch](image_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(parts.config, dtype=torch.float32)
    model.generation_config = parts.generation_config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _quiet_transformers():
        model.save_pretrained(out)
    parts.processor.save_pretrained(out)
    if parts.after_save is not None:
        parts.after_save(out)
    return out


def main(argv: list[str] | None = None) -> int:
    """``ssl-gym make-tiny-model DIR --arch idefics3|qwen2_5_vl``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="ssl-gym make-tiny-model", description="Build a tiny random VLM offline."
    )
    parser.add_argument("out_dir")
    parser.add_argument("--arch", default="idefics3", choices=ARCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args(argv)
    path = build_tiny_model(
        args.out_dir, arch=args.arch, seed=args.seed, image_size=args.image_size
    )
    print(f"tiny {args.arch} model written to {path}")
    return 0


#: Published shapes of production models, for memory estimates and GPU step timings of a
#: random model of the real size (nothing downloaded).
PRODUCTION_SHAPES: dict[str, dict[str, Any]] = {
    "qwen2_5_vl_3b": {
        "text_config": {
            "vocab_size": 151936,
            "hidden_size": 2048,
            "intermediate_size": 11008,
            "num_hidden_layers": 36,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1_000_000.0,
                "mrope_section": [16, 24, 24],
            },
            "tie_word_embeddings": True,
        },
        "vision_config": {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 2048,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
        },
        "tie_word_embeddings": True,
    },
}


def write_production_config(out_dir: str | Path, name: str = "qwen2_5_vl_3b") -> Path:
    """Save the config of a production-shaped model (no weights) to ``out_dir``."""
    if name not in PRODUCTION_SHAPES:
        raise ValueError(f"unknown shape {name!r}; known: {', '.join(PRODUCTION_SHAPES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    Qwen2_5_VLConfig(**PRODUCTION_SHAPES[name]).save_pretrained(out)
    return out
