"""The one composite builder of :mod:`ssl_gym.render`."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_gym.puzzles.jigsaw import JigsawConfig
from ssl_gym.render import Composite


def _panels(count: int, h: int, w: int) -> list[np.ndarray]:
    rng = np.random.default_rng(count)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(count)]


def test_grid_pastes_and_cuts_every_panel_back() -> None:
    comp = Composite.grid(5, 3, (10, 12), [str(k) for k in range(5)], gap=4, label_height=6)
    assert comp.shape == (2 * 16 + 3 * 4, 3 * 12 + 4 * 4, 3)
    panels = _panels(5, 10, 12)
    picture = comp.paste(panels)
    for got, want in zip(comp.cut(picture), panels, strict=True):
        assert np.array_equal(got, want)
    assert np.array_equal(comp.paste(_panels(5, 10, 12)), picture)  # deterministic panels
    assert (comp.blank[0] == 255).all()  # the top gap stays white
    assert not np.array_equal(comp.blank[4:10, 4:16], np.full((6, 12, 3), 255))  # a label
    with pytest.raises(ValueError, match="5 panels expected, got 4"):
        comp.paste(panels[:4])


def test_place_shifts_each_block_and_keeps_panel_order() -> None:
    left = Composite.grid(1, 1, (8, 8), None, gap=2)
    right = Composite.grid(2, 2, (6, 6), None, gap=2)
    both = Composite.place([(left, (0, 0)), (right, (1, 20))], (14, 40))
    assert both.boxes == ((2, 2, 8, 8), (3, 22, 6, 6), (3, 30, 6, 6))
    panels = [*_panels(1, 8, 8), *_panels(2, 6, 6)]
    for got, want in zip(both.cut(both.paste(panels)), panels, strict=True):
        assert np.array_equal(got, want)


def test_a_retired_layout_name_is_renamed_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="now layout='images'"):
        cfg = JigsawConfig(layout="tiles")
    assert cfg.layout == "images"
    with pytest.raises(ValueError, match="'images', 'composite'"):
        JigsawConfig(layout="image")


def test_a_mixture_canvas_resizes_each_image_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from ssl_gym import render

    def smooth(h: int, w: int) -> np.ndarray:  # a picture, not noise: resampling keeps it
        y, x = np.mgrid[0:h, 0:w]
        return np.stack([255 * x / w, 255 * y / h, 128 + 0 * x], axis=-1).astype(np.uint8)

    images = [smooth(96, 96), smooth(64, 128)]
    two_step = render.letterbox(render.composite(images), 448)
    calls: list[tuple[int, int]] = []
    real = render.resize

    def counting(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        calls.append(tuple(shape))  # type: ignore[arg-type]
        return real(image, shape)

    monkeypatch.setattr(render, "resize", counting)
    one_step = render.composite_on_canvas(images, 448)
    assert len(calls) == len(images)  # letterbox(composite(...)) makes len(images) + 1
    assert one_step.shape == two_step.shape == (448, 448, 3)
    # the same layout and nearly the same pixels (a label or gap may move by a pixel)
    assert np.abs(one_step.astype(int) - two_step.astype(int)).mean() < 4
