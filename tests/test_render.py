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
