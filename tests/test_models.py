"""agents.tiny and agents.models on tiny random checkpoints of both families (built offline)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from safetensors.torch import load_file  # noqa: E402

from agents.models import (  # noqa: E402
    VLM,
    chat_messages,
    completion_logprobs,
    encode,
    load_vlm,
    prompt_text,
)
from agents.tiny import ARCHS, build_tiny_model  # noqa: E402

PROMPTS = ("What is the rotation? Answer 0, 90, 180 or 270.", "Order the tiles: 1,2,3")


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {arch: build_tiny_model(root / arch, arch=arch, seed=0) for arch in ARCHS}


@pytest.fixture(scope="module", params=ARCHS)
def vlm(request: pytest.FixtureRequest, tiny_dirs: dict[str, Path]) -> VLM:
    return load_vlm(tiny_dirs[request.param])


def _images(count: int, seed: int, size: tuple[int, int] = (64, 64)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(count)]


def _batch(vlm: VLM) -> tuple[list[str], list[list[np.ndarray]]]:
    """Two prompts of different lengths with 1 and 2 images (one not square)."""
    texts = [prompt_text(vlm, PROMPTS[0], 1), prompt_text(vlm, PROMPTS[1] * 3, 2)]
    return texts, [_images(1, 0), [*_images(1, 1), *_images(1, 2, (80, 48))]]


def _completions(vlm: VLM) -> tuple[Any, Any]:
    """Right-padded completions of lengths 4 and 7 ending in an end-of-turn token."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(50, len(vlm.tokenizer), (2, 7), generator=gen)
    mask = torch.ones_like(ids)
    ids[0, 3], ids[1, 6] = vlm.eos_token_ids[0], vlm.eos_token_ids[0]
    ids[0, 4:], mask[0, 4:] = vlm.pad_token_id, 0
    return ids, mask


# --- build / load ------------------------------------------------------------------------


def test_build_writes_a_checkpoint(tiny_dirs: dict[str, Path]) -> None:
    for path in tiny_dirs.values():
        names = {p.name for p in path.iterdir()}
        assert {
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "processor_config.json",
        } <= names
        assert "chat_template.jinja" in names or "chat_template.json" in names


def test_reloads_with_auto_classes(tiny_dirs: dict[str, Path]) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = tiny_dirs["idefics3"]
    assert type(AutoProcessor.from_pretrained(path)).__name__ == "Idefics3Processor"
    assert AutoModelForImageTextToText.from_pretrained(path).config.model_type == "idefics3"
    # Qwen2.5-VL: the standard class is named (AutoProcessor needs torchvision for its video
    # processor; load_vlm falls back to the image-only subclass without it).
    config = json.loads((tiny_dirs["qwen2_5_vl"] / "processor_config.json").read_text())
    assert config["processor_class"] == "Qwen2_5_VLProcessor"
    assert config["video_processor"]["video_processor_type"] == "Qwen2VLVideoProcessor"


def test_loads_without_a_pad_token_id_warning(tiny_dirs: dict[str, Path]) -> None:
    """No "pad_token_id must be ... got 128002" (transformers' default Idefics3 config)."""
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    root = hf_logging.get_logger()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()
    root.addHandler(handler)
    try:
        for arch in ARCHS:
            hf_logging.warning_once.cache_clear()  # as in a fresh process
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                vlm = load_vlm(tiny_dirs[arch])
            messages = [r.getMessage() for r in records] + [str(w.message) for w in caught]
            assert not [m for m in messages if "pad_token_id" in m], (arch, messages)
            vocab = len(vlm.tokenizer)
            config = vlm.model.config
            text = config.get_text_config(decoder=True)
            assert vlm.tokenizer.pad_token_id == vlm.pad_token_id
            assert 0 <= vlm.pad_token_id < vocab <= text.vocab_size
            for pad in (text.pad_token_id, vlm.model.generation_config.pad_token_id):
                assert pad == vlm.pad_token_id, arch
            assert getattr(config, "pad_token_id", None) in (None, vlm.pad_token_id)
    finally:
        root.removeHandler(handler)
        hf_logging.set_verbosity(verbosity)


@pytest.mark.parametrize(
    ("arch", "image_size", "tokens"), [("idefics3", 96, 9), ("qwen2_5_vl", 84, 9)]
)
def test_image_size_sets_tokens_per_image(
    tmp_path: Path, arch: str, image_size: int, tokens: int
) -> None:
    vlm = load_vlm(build_tiny_model(tmp_path, arch, image_size=image_size))
    batch = encode(vlm, [prompt_text(vlm, "Q?", 1)], [_images(1, 0, (200, 200))])
    assert int((batch["input_ids"] == vlm.model.config.image_token_id).sum()) == tokens


def test_load_gives_tiny_model(vlm: VLM) -> None:
    text_config = vlm.model.config.get_text_config()
    assert vlm.arch in ARCHS
    assert text_config.hidden_size == 64 and text_config.num_hidden_layers == 2
    assert text_config.hidden_size // text_config.num_attention_heads >= 32
    assert text_config.vocab_size == len(vlm.tokenizer) <= 1024
    assert not vlm.model.training
    assert sum(p.numel() for p in vlm.model.parameters()) < 1_000_000


def test_tokenizer_round_trips_puzzle_answers(vlm: VLM) -> None:
    text = "<answer>top-left, 270</answer> positive 3,1,2,0 \\boxed{90} é"
    ids = vlm.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert vlm.tokenizer.decode(ids) == text
    assert len(ids) < len(text.encode())


def test_placeholder_and_eos_ids(vlm: VLM) -> None:
    config = vlm.model.config
    assert config.image_token_id in vlm.placeholder_token_ids
    vocab = vlm.tokenizer.get_vocab()
    end_of_turn = "<end_of_utterance>" if vlm.arch == "idefics3" else "<|im_end|>"
    assert vocab[end_of_turn] in vlm.eos_token_ids
    assert not set(vlm.eos_token_ids) & set(vlm.placeholder_token_ids)
    assert vlm.pad_token_id == vlm.tokenizer.pad_token_id


def test_same_seed_same_weights(tmp_path: Path) -> None:
    for arch in ARCHS:
        a = load_file(build_tiny_model(tmp_path / f"{arch}a", arch, seed=7) / "model.safetensors")
        b = load_file(build_tiny_model(tmp_path / f"{arch}b", arch, seed=7) / "model.safetensors")
        c = load_file(build_tiny_model(tmp_path / f"{arch}c", arch, seed=8) / "model.safetensors")
        assert a.keys() == b.keys() == c.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize(
    ("arch", "image_size"), [("nope", 64), ("idefics3", 48), ("idefics3", 0), ("qwen2_5_vl", 16)]
)
def test_build_rejects_bad_arguments(tmp_path: Path, arch: str, image_size: int) -> None:
    with pytest.raises(ValueError, match=r"arch|image_size"):
        build_tiny_model(tmp_path, arch=arch, image_size=image_size)


def test_hub_id_gives_clear_error() -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_vlm("HuggingFaceTB/SmolVLM-256M")
    message = str(err.value)
    assert "local disk" in message and "huggingface-cli download" in message
    assert "--local-dir" in message and "make-tiny-model" in message


def test_missing_dir_gives_clear_error(tmp_path: Path) -> None:
    for path in (tmp_path / "absent", tmp_path):  # absent; present but no config.json
        with pytest.raises(FileNotFoundError, match=re.escape(str(path.resolve()))):
            load_vlm(path)


# --- chat ----------------------------------------------------------------------------------


def test_chat_messages_layout() -> None:
    messages = chat_messages("Q?", 2, [("assistant", "90"), ("user", "hint: not 90")])
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [part["type"] for part in messages[0]["content"]] == ["image", "image", "text"]
    assert messages[2]["content"] == [{"type": "text", "text": "hint: not 90"}]
    with pytest.raises(ValueError, match="role"):
        chat_messages("Q?", 1, [("user", "again")])
    with pytest.raises(ValueError, match="num_images"):
        chat_messages("Q?", -1)


def test_prompt_text_uses_family_template(vlm: VLM) -> None:
    text = prompt_text(vlm, "Q?", 1, [("assistant", "90"), ("user", "hint")])
    if vlm.arch == "idefics3":
        assert text.startswith("<|im_start|>User:<image>Q?<end_of_utterance>\n")
        assert text.endswith("User: hint<end_of_utterance>\nAssistant:")
    else:
        assert "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Q?<|im_end|>" in text
        assert text.endswith("<|im_start|>user\nhint<|im_end|>\n<|im_start|>assistant\n")


# --- encode / generate -----------------------------------------------------------------------


def test_encode_left_pads_a_mixed_batch(vlm: VLM) -> None:
    texts, images = _batch(vlm)
    batch = encode(vlm, texts, images)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape and ids.shape[0] == 2
    assert mask[:, -1].all() and not mask[0, 0] and mask[1].all()
    assert (ids[0][mask[0] == 0] == vlm.pad_token_id).all()
    image_tokens = (ids == vlm.model.config.image_token_id).sum(-1).tolist()
    assert image_tokens[0] == 4 and image_tokens[1] > image_tokens[0]  # 4 per 64x64 image
    expected = {"idefics3": {"pixel_values", "pixel_attention_mask"}}
    assert expected.get(vlm.arch, {"pixel_values", "image_grid_thw"}) <= set(batch)


def test_encode_handles_prompts_without_images(vlm: VLM) -> None:
    texts = [prompt_text(vlm, "no image here", 0), prompt_text(vlm, PROMPTS[0], 1)]
    batch = encode(vlm, texts, [[], _images(1, 3)])
    assert "pixel_values" in batch
    text_only = encode(vlm, texts[:1], [[]])
    assert "pixel_values" not in text_only
    with pytest.raises(ValueError, match="image lists"):
        encode(vlm, texts, [[]])
    with pytest.raises(ValueError, match="uint8"):
        encode(vlm, texts[1:], [[np.zeros((8, 8), np.uint8)]])


def test_generate_with_images(vlm: VLM) -> None:
    texts, images = _batch(vlm)
    batch = encode(vlm, texts, images)
    out = vlm.model.generate(
        **batch,
        max_new_tokens=6,
        do_sample=False,
        suppress_tokens=list(vlm.placeholder_token_ids),
        eos_token_id=list(vlm.eos_token_ids),
        pad_token_id=vlm.pad_token_id,
    )
    new = out[:, batch["input_ids"].shape[1] :]
    assert new.shape[0] == 2 and 1 <= new.shape[1] <= 6
    assert not set(new.flatten().tolist()) & set(vlm.placeholder_token_ids)
    assert all(isinstance(t, str) for t in vlm.tokenizer.batch_decode(new))


# --- completion_logprobs -------------------------------------------------------------------


def test_batched_logprobs_match_unpadded_singles(vlm: VLM) -> None:
    texts, images = _batch(vlm)
    ids, mask = _completions(vlm)
    with torch.no_grad():
        logprobs, entropies = completion_logprobs(vlm, encode(vlm, texts, images), ids, mask)
    assert logprobs.shape == entropies.shape == ids.shape
    assert logprobs.dtype == torch.float32
    assert (logprobs[mask == 0] == 0).all() and (logprobs[mask == 1] < 0).all()
    for i in range(2):
        n = int(mask[i].sum())
        single = encode(vlm, texts[i : i + 1], images[i : i + 1])
        assert single["attention_mask"].all()
        with torch.no_grad():
            lp, ent = completion_logprobs(vlm, single, ids[i : i + 1, :n], mask[i : i + 1, :n])
        torch.testing.assert_close(lp[0], logprobs[i, :n], atol=1e-5, rtol=0)
        torch.testing.assert_close(ent[0], entropies[i, :n], atol=1e-5, rtol=0)


def test_logprobs_match_log_softmax_by_hand(vlm: VLM) -> None:
    texts, images = _batch(vlm)
    batch = encode(vlm, texts[:1], images[:1])
    completion = _completions(vlm)[0][1:, :5]
    inputs = dict(batch)
    prompt_len = inputs["input_ids"].shape[1]
    inputs["input_ids"] = torch.cat([inputs["input_ids"], completion], dim=1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    if "mm_token_type_ids" in inputs:
        inputs["mm_token_type_ids"] = torch.cat(
            [inputs["mm_token_type_ids"], torch.zeros_like(completion)], dim=1
        )
    with torch.no_grad():
        logits = vlm.model(**inputs).logits[0, prompt_len - 1 : -1]
        for temperature in (1.0, 2.0):
            expected_all = (logits / temperature).log_softmax(-1)
            expected = expected_all[torch.arange(5), completion[0]]
            lp, ent = completion_logprobs(
                vlm, batch, completion, torch.ones_like(completion), temperature=temperature
            )
            torch.testing.assert_close(lp[0], expected, atol=1e-5, rtol=0)
            entropy = -(expected_all.exp() * expected_all).sum(-1)
            torch.testing.assert_close(ent[0], entropy, atol=1e-5, rtol=0)


def test_logprobs_are_differentiable(vlm: VLM) -> None:
    texts, images = _batch(vlm)
    ids, mask = _completions(vlm)
    logprobs, _ = completion_logprobs(vlm, encode(vlm, texts, images), ids, mask)
    vlm.model.zero_grad()
    logprobs.sum().backward()
    grads = [p.grad for p in vlm.model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    vlm.model.zero_grad()


def test_logprobs_reject_bad_shapes(vlm: VLM) -> None:
    texts, images = _batch(vlm)
    batch = encode(vlm, texts, images)
    ids, mask = _completions(vlm)
    with pytest.raises(ValueError, match="must both be"):
        completion_logprobs(vlm, batch, ids, mask[:, :3])
    with pytest.raises(ValueError, match="completions for"):
        completion_logprobs(vlm, batch, ids[:1], mask[:1])
    with pytest.raises(ValueError, match="temperature"):
        completion_logprobs(vlm, batch, ids, mask, temperature=0.0)


def test_every_load_says_trust_remote_code_false(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The config, processor and model loads pass ``trust_remote_code=False`` explicitly."""
    import transformers

    import agents.models as models
    from agents.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny", seed=0)
    seen: dict[str, object] = {}
    for owner in (
        transformers.AutoConfig,
        transformers.AutoProcessor,
        transformers.AutoModelForImageTextToText,
    ):
        inner = owner.from_pretrained

        def recording(*args: object, _inner=inner, _name=owner.__name__, **kwargs: object):
            seen[_name] = kwargs.get("trust_remote_code", "not given")
            return _inner(*args, **kwargs)

        monkeypatch.setattr(owner, "from_pretrained", recording)
    models.load_vlm(model)
    assert seen == {
        "AutoConfig": False,
        "AutoProcessor": False,
        "AutoModelForImageTextToText": False,
    }
