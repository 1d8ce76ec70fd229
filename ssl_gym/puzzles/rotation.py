"""Rotation: by how many degrees has the image been turned?

## Description

One square image rotated counter-clockwise by ``k x (360 / angles)`` degrees (SSL4RL's
and SSL-R1's rotation task). With ``reference=True`` the unrotated image is shown first
(SSL4RL's variant), which turns the task into comparing two views.

## Observation

One square ``size x size`` image (two with ``reference``: the original, then the rotated
one). Every angle yields the same size and aspect ratio, so nothing but the pixels tells
the angle. With 8 angles the picture is shown inside a disc on plain gray, the same disc
at every angle (a square cut would show other pixels at a diagonal turn): it is drawn at
twice the size, turned with bilinear resampling at a random sub-pixel shift (so right
angles are resampled like diagonal ones), reduced with an area filter, and given mild
random sharpness, grain and tone (:func:`ssl_gym.augment.texture`), since photographs have
more upright and level edges than diagonal ones and gradient energy would tell a diagonal
turn.

## Answer format

Degrees counter-clockwise, one of ``0, 90, 180, 270`` (4-way), e.g. ``<answer>90</answer>``.
``90``, ``90°`` and ``90 degrees`` all read as 90; text with two different numbers does
not parse.

## Reward

1 for the exact angle. With ``angular_credit=True``: ``1 - d / 180`` where ``d`` is the
angular distance in degrees. In multi-turn play (``-Hint`` ids) each wrong answer costs
the retry cost of :mod:`ssl_gym.multiturn` (0.5 for 4 angles), so that trying the angles
in turn earns no more than chance.

## Difficulty

``angles`` (2, 4 or 8) and the presence of the reference image. Hints, drawn on the
rotated picture: level 0 a line along the scene's original up-down axis (which leaves
two angles open), level 1 an arrow to the scene's original top.

## Registered Configurations

* ``SSL/Rotation-2way-v1``: 0 or 180 degrees (easy).
* ``SSL/Rotation-4way-Ref-v1``: 4 angles, unrotated reference shown first (easy).
* ``SSL/Rotation-4way-v1``: 4 angles (medium).
* ``SSL/Rotation-8way-v1``: 8 angles, multiples of 45 degrees (hard).

## Version History

* -Hint v2 (the single-turn ids keep their version): each wrong answer costs enough
  that the mean of 200 blind episodes stays within chance + 0.05 at 2.33 standard
  errors (``ssl_gym.multiturn``); at exactly chance, blind play's wide spread passed
  that check only about six times in seven.
* v1: hints are marks drawn on the picture (the up-down axis, then an arrow to the top)
  with texts that are the same for every instance; the level-0 text used to name where
  the top went, which a player who never looks could read. 8-way: the disc, the
  sub-pixel shift and the texture randomisation; v0's square cut showed other pixels at
  diagonal angles and blurred only them (a learner on size, colour, border and
  sharpness statistics scored 0.41 on ``photos``, chance 0.125).
* v0: initial release.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from ssl_gym.augment import TextureParams, texture
from ssl_gym.core import (
    Hint,
    Instance,
    Parts,
    Preset,
    Puzzle,
    PuzzleConfig,
    Rejected,
    check_choice,
    check_float,
    preset,
)
from ssl_gym.images.base import ImageSource
from ssl_gym.render import is_flat, mark_line

QUESTIONS = {
    "ssl4rl": (
        "The image has been rotated counter-clockwise by one of these angles: {angles} "
        "degrees. What is the rotation angle? Answer with the number of degrees."
    ),
    "ssl_r1": (
        "This image may have been rotated. By how many degrees counter-clockwise was it "
        "rotated from its upright orientation? Options: {angles}. Answer with the angle."
    ),
    "plain": "Rotation angle counter-clockwise in degrees ({angles})?",
}
REFERENCE_QUESTIONS = {
    "ssl4rl": (
        "Image 1 is the original image. Image 2 is Image 1 rotated counter-clockwise by one "
        "of these angles: {angles} degrees. What is the rotation angle? Answer with the "
        "number of degrees."
    ),
    "ssl_r1": (
        "The first image is upright. The second image is the first one rotated "
        "counter-clockwise. By how many degrees? Options: {angles}. Answer with the angle."
    ),
    "plain": "Image 2 is Image 1 rotated counter-clockwise by how many degrees ({angles})?",
}
HINTS = (
    "The line drawn through the picture runs along the up-down axis of the original "
    "scene: its top and its bottom lie at the two ends of the line.",
    "The arrow drawn on the picture points to where the top of the original scene is now.",
)
"""The texts of the two hints; what they say about the instance is drawn on the picture."""
_NUMBER = re.compile(r"-?\d+")
SUPERSAMPLE = 2
"""Scale at which 45-degree turns are resampled before the area reduction."""
DISC_GRAY = 128
"""Gray level outside the disc that 45-degree turns are shown in."""
DISC_MARGIN = 6
"""Pixels of plain gray between the disc and the picture's edge."""
TEXTURE = TextureParams(rescale=(0.6, 1.0), blur=(0.0, 0.8), noise=(0.0, 6.0), gamma=(0.8, 1.25))
"""Mild random sharpness, grain and tone of every 45-degree view: photographs have more
upright and level edges than diagonal ones, so without it gradient energy tells a
diagonal turn (:func:`ssl_gym.augment.texture`)."""


@lru_cache(maxsize=8)
def _disc(side: int) -> np.ndarray:
    """Weights ``(side, side, 1)``: 1 inside the inscribed disc, 0 outside (read-only)."""
    centre, radius = (side - 1) / 2, side / 2 - DISC_MARGIN * SUPERSAMPLE
    yy, xx = np.mgrid[:side, :side]
    disc = ((yy - centre) ** 2 + (xx - centre) ** 2 <= radius**2).astype(np.float32)
    disc.setflags(write=False)
    return disc[..., None]


@dataclass(frozen=True, kw_only=True)
class RotationConfig(PuzzleConfig):
    """Settings of the Rotation family."""

    angles: int = 4
    """Number of angle classes: 2 (0/180), 4 (right angles) or 8 (multiples of 45)."""
    reference: bool = False
    """Show the unrotated image first (SSL4RL's two-image variant)."""
    angular_credit: bool = False
    """Partial credit ``1 - d/180`` for an angle ``d`` degrees away, instead of exact match."""
    min_std: float = 12.0
    """Reject near-uniform images whose pixel standard deviation is below this."""
    min_rotation_diff: float = 8.0
    """Reject images that look the same after a rotation (mean absolute difference)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("angles", self.angles, (2, 4, 8))
        check_choice("reference", self.reference, (True, False))
        check_choice("angular_credit", self.angular_credit, (True, False))
        check_float("min_std", self.min_std, 0.0, 128.0)
        check_float("min_rotation_diff", self.min_rotation_diff, 0.0, 255.0)


class Rotation(Puzzle[RotationConfig]):
    """Predict the rotation applied to an image."""

    family = "Rotation"
    version = 1
    hint_version = 2  # retries priced for the 200-episode blind check
    config_cls = RotationConfig

    @property
    def step(self) -> int:
        """Degrees between neighbouring angle classes."""
        return 360 // self.config.angles

    @property
    def angle_choices(self) -> tuple[str, ...]:
        """The valid answers as text."""
        return tuple(str(k * self.step) for k in range(self.config.angles))

    @property
    def chance_score(self) -> float:
        """Mean score of a uniformly random angle."""
        angles = [k * self.step for k in range(self.config.angles)]
        return float(np.mean([self._credit(a, b) for a in angles for b in angles]))

    def image_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """One or two square images."""
        side = self.config.size
        return ((side, side, 3),) * (2 if self.config.reference else 1)

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        cfg = self.config
        k = int(rng.integers(cfg.angles))
        if cfg.angles == 8:
            upright, rotated, key = self._rotate_resampled(rng, source, k * self.step)
        else:
            upright, key = source.draw(rng, (cfg.size, cfg.size))
            rotated = np.rot90(upright, k * self.step // 90)
        self._check_unambiguous(upright)
        images = (upright, rotated) if cfg.reference else (rotated,)
        texts = REFERENCE_QUESTIONS if cfg.reference else QUESTIONS
        question = self.style(texts, angles=", ".join(self.angle_choices))
        answer = str(k * self.step)
        return self.make_instance(
            images, question, k * self.step, answer, choices=self.angle_choices, source_keys=[key]
        )

    def parts(self, instance: Instance) -> Parts:
        """No parts: the rotated picture's content is what the puzzle asks to read.

        With ``reference``, the upright picture is the reference: alone, it must not tell
        the angle.
        """
        ref = instance.images[0] if self.config.reference else None
        return Parts("label", (), (), reference=ref)

    def _rotate_resampled(
        self, rng: np.random.Generator, source: ImageSource, angle: int
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """For 45-degree steps: the picture and its turn inside one disc, and the source key.

        The picture is drawn at :data:`SUPERSAMPLE` times the output side, turned
        (bilinear), everything outside the inscribed disc painted gray, and reduced with an
        area filter. The disc shows the same part of the picture at every angle (a square
        cut would show other pixels at a diagonal turn), its gray surround is the same at
        every angle, and the resampling blur falls below a pixel, so neither the frame nor
        sharpness tells a diagonal angle from a right one.
        """
        side, margin = self.config.size, 4 * SUPERSAMPLE
        inner = side * SUPERSAMPLE
        drawn, key = source.draw(rng, (inner + 2 * margin,) * 2)
        big = Image.fromarray(drawn)
        disc = _disc(inner)
        views = []
        for a in (0, angle):
            # A random sub-pixel shift resamples every angle alike (PIL copies right angles).
            dx, dy = (float(v) for v in rng.uniform(-0.5, 0.5, size=2))
            # PIL takes sub-pixel translations; its stubs say int.
            turned = big.rotate(a, Image.Resampling.BILINEAR, translate=(dx, dy))  # type: ignore[arg-type]
            cut = np.asarray(turned.crop((margin, margin, margin + inner, margin + inner)))
            painted = (cut * disc + DISC_GRAY * (1.0 - disc) + 0.5).astype(np.uint8)
            small = Image.fromarray(painted).resize((side, side), Image.Resampling.BOX)
            views.append(texture(np.asarray(small), rng, TEXTURE))
        return views[0], views[1], key

    def _check_unambiguous(self, upright: np.ndarray) -> None:
        cfg = self.config
        if is_flat(upright, cfg.min_std):
            raise Rejected("flat")
        base = upright[::2, ::2].astype(np.int16)  # every second pixel: fast, same verdict
        for quarter in range(1, 4):
            diff = np.abs(np.rot90(base, quarter) - base).mean()
            if diff < cfg.min_rotation_diff:
                raise Rejected("rotation_invariant")

    def parse(self, text: str) -> int | None:
        """Read one angle in degrees; text naming two different numbers does not parse."""
        numbers = {int(n) % 360 for n in _NUMBER.findall(text[:200])}
        return numbers.pop() if len(numbers) == 1 else None

    def score(self, instance: Instance, solution: Any) -> float:
        """Exact match, or angular partial credit."""
        return self._credit(int(instance.solution), int(solution))

    def _credit(self, truth: int, guess: int) -> float:
        d = abs(truth - guess) % 360
        d = min(d, 360 - d)
        if self.config.angular_credit:
            return 1.0 - d / 180.0
        return float(d == 0)

    def hint(self, instance: Instance, level: int) -> Hint | None:
        """Level 0 draws the scene's up-down axis on the picture; level 1 the arrow to its top.

        Both are marks on the rotated picture: the texts are the same for every instance,
        so only a player who looks at the marks learns anything from them.
        """
        if not 0 <= level < len(HINTS):
            return None
        image = instance.images[-1]
        h, w = image.shape[:2]
        theta = math.radians(int(instance.solution))  # counter-clockwise
        ux, uy = -math.sin(theta), -math.cos(theta)  # where the scene's top went (y down)
        r = 0.42 * min(h, w)
        start, end = (w / 2 - r * ux, h / 2 - r * uy), (w / 2 + r * ux, h / 2 + r * uy)
        marked = mark_line(image, start, end, arrow=level == 1)
        return Hint(HINTS[level], (*instance.images[:-1], marked))


PRESETS: dict[str, Preset] = {
    "2way": preset("easy", "0 or 180 degrees", angles=2),
    "4way-Ref": preset("easy", "4 angles, reference shown first", angles=4, reference=True),
    "4way": preset("medium", "4 right angles", angles=4),
    "8way": preset("hard", "8 angles in steps of 45 degrees", angles=8),
}
Rotation.presets = PRESETS
