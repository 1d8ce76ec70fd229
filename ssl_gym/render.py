"""Pixel operations shared by the puzzle families: tiles, crops, labels, composites.

Everything takes and returns uint8 (H, W, 3) numpy arrays; PIL is used only where it is
faster (resizing, text).
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

try:  # ISA-L's deflate (python-isal, in the adapters extra): see PNG_LEVEL
    from isal import isal_zlib
except ImportError:  # pragma: no cover - exercised by forcing the fallback in tests
    isal_zlib = None  # type: ignore[assignment]

BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)


def split_tiles(image: np.ndarray, rows: int, cols: int) -> list[np.ndarray]:
    """Cut an image into ``rows x cols`` equal tiles in row-major order (views, no copy).

    The image is cropped at the bottom and right to a multiple of the tile size.
    """
    th, tw = image.shape[0] // rows, image.shape[1] // cols
    return [
        image[r * th : (r + 1) * th, c * tw : (c + 1) * tw]
        for r in range(rows)
        for c in range(cols)
    ]


def join_tiles(tiles: Sequence[np.ndarray], rows: int, cols: int) -> np.ndarray:
    """Inverse of :func:`split_tiles`: tiles in row-major order back into one image."""
    th, tw = tiles[0].shape[:2]
    out = np.empty((rows * th, cols * tw, 3), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = tile
    return out


def resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize to ``(H, W)``."""
    if image.shape[:2] == tuple(shape):
        return image
    pil = Image.fromarray(image).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(pil)


def crop(image: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """A copy of the window ``[top:top+height, left:left+width]``."""
    return np.ascontiguousarray(image[top : top + height, left : left + width])


def mask_border(tile: np.ndarray, width: int, color: int = 128) -> np.ndarray:
    """A copy of ``tile`` with a flat frame of ``width`` pixels (defeats edge matching)."""
    out = tile.copy()
    if width > 0:
        out[:width], out[-width:] = color, color
        out[:, :width], out[:, -width:] = color, color
    return out


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels (no system fonts needed)."""
    return ImageFont.load_default(size=size)


def label_strip(text: str, width: int, height: int) -> np.ndarray:
    """A white strip with ``text`` centred in black, large enough to read at a glance."""
    pil = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(pil)
    f = font(max(8, int(height * 0.8)))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=f)
    x, y = (width - (right - left)) / 2 - left, (height - (bottom - top)) / 2 - top
    draw.text((x, y), text, fill=INK, font=f)
    return np.asarray(pil)


def grid_slots(
    count: int, cols: int, height: int, width: int, gap: int = 4, label_height: int = 0
) -> list[tuple[int, int]]:
    """Top-left corners of ``count`` images of ``height x width`` in a :func:`grid` layout.

    The corner is the image's own, below its label; a composite made with :func:`grid`
    (or around one) pastes its images there.
    """
    slots = []
    for i in range(count):
        r, c = divmod(i, cols)
        slots.append(
            (gap + r * (height + label_height + gap) + label_height, gap + c * (width + gap))
        )
    return slots


def cut_slots(
    image: np.ndarray, slots: Sequence[tuple[int, int]], height: int, width: int | None = None
) -> list[np.ndarray]:
    """The ``height x width`` images at ``slots`` (top-left corners) of a composite."""
    w = height if width is None else width
    return [image[y : y + height, x : x + w] for y, x in slots]


def window(image: np.ndarray, point: Sequence[float], side: int) -> np.ndarray:
    """The ``side x side`` window of ``image`` centred on ``point`` (x, y), kept inside it."""
    h, w = image.shape[:2]
    side = min(side, h, w)
    x = min(max(round(point[0]) - side // 2, 0), w - side)
    y = min(max(round(point[1]) - side // 2, 0), h - side)
    return image[y : y + side, x : x + side]


def grid(
    images: Sequence[np.ndarray],
    cols: int,
    labels: Sequence[str] | None = None,
    gap: int = 4,
    label_height: int = 0,
) -> np.ndarray:
    """Lay equally sized images out in a grid on white, each with an optional label above.

    The output size depends only on the image size, count, ``cols``, ``gap`` and
    ``label_height``, so a registered variant keeps one observation shape.
    """
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    cell_h = h + label_height
    out = np.full(
        (rows * cell_h + (rows + 1) * gap, cols * w + (cols + 1) * gap, 3), 255, dtype=np.uint8
    )
    slots = grid_slots(len(images), cols, h, w, gap, label_height)
    for i, (im, (y, x)) in enumerate(zip(images, slots, strict=True)):
        if labels is not None and label_height:
            out[y - label_height : y, x : x + w] = label_strip(labels[i], w, label_height)
        out[y : y + h, x : x + w] = im
    return out


#: The layouts of a family that shows several panels: ``images``, each panel its own
#: observation image; ``composite``, all of them in one labelled picture (:class:`Composite`).
LAYOUTS = ("images", "composite")


@dataclass(frozen=True, eq=False)
class Composite:
    """One picture of panels on white: where each panel goes, labels drawn once.

    Built once per puzzle (:meth:`grid`, then :meth:`place` for several blocks); every
    instance then :meth:`paste` s its panels into a copy of :attr:`blank`, and
    :meth:`cut` reads them back out.

    Attributes:
        blank: The picture with its labels and lines, every panel black.
        boxes: Each panel's ``(top, left, height, width)``, in panel order.
    """

    blank: np.ndarray
    boxes: tuple[tuple[int, int, int, int], ...]

    @classmethod
    def grid(
        cls,
        count: int,
        cols: int,
        panel: tuple[int, int],
        labels: Sequence[str] | None = None,
        gap: int = 4,
        label_height: int = 0,
    ) -> Composite:
        """``count`` panels of ``panel = (height, width)`` in rows of ``cols``, as :func:`grid`."""
        h, w = panel
        blank = grid([np.zeros((h, w, 3), np.uint8)] * count, cols, labels, gap, label_height)
        slots = grid_slots(count, cols, h, w, gap, label_height)
        return cls(blank, tuple((y, x, h, w) for y, x in slots))

    @classmethod
    def place(
        cls, blocks: Sequence[tuple[Composite, tuple[int, int]]], shape: tuple[int, int]
    ) -> Composite:
        """Blocks pasted at their ``(top, left)`` on a white ``shape`` picture, in order."""
        blank = np.full((*shape, 3), 255, np.uint8)
        boxes: list[tuple[int, int, int, int]] = []
        for block, (top, left) in blocks:
            bh, bw = block.blank.shape[:2]
            blank[top : top + bh, left : left + bw] = block.blank
            boxes += [(y + top, x + left, h, w) for y, x, h, w in block.boxes]
        return cls(blank, tuple(boxes))

    @property
    def shape(self) -> tuple[int, int, int]:
        """The picture's ``(height, width, 3)``."""
        h, w, c = self.blank.shape
        return (h, w, c)

    @property
    def corners(self) -> list[tuple[int, int]]:
        """Each panel's top-left corner ``(y, x)``."""
        return [(y, x) for y, x, _, _ in self.boxes]

    def paste(self, panels: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """A new picture with ``panels`` (one per box, of its size; or a stack) in place."""
        if len(panels) != len(self.boxes):
            raise ValueError(f"{len(self.boxes)} panels expected, got {len(panels)}")
        out = self.blank.copy()
        for (y, x, h, w), panel in zip(self.boxes, panels, strict=True):
            out[y : y + h, x : x + w] = panel
        return out

    def cut(self, image: np.ndarray) -> list[np.ndarray]:
        """The panels of a pasted picture, in order (views, no copies)."""
        return [image[y : y + h, x : x + w] for y, x, h, w in self.boxes]


def composite(images: Sequence[np.ndarray], height: int = 256, gap: int = 8) -> np.ndarray:
    """All observation images side by side at one height, numbered, for display."""
    scaled = [
        resize(im, (height, max(1, round(im.shape[1] * height / im.shape[0])))) for im in images
    ]
    label_h = max(14, height // 10)
    width = sum(im.shape[1] for im in scaled) + gap * (len(scaled) + 1)
    out = np.full((height + label_h + 2 * gap, width, 3), 255, dtype=np.uint8)
    x = gap
    for i, im in enumerate(scaled):
        w = im.shape[1]
        out[gap : gap + label_h, x : x + w] = label_strip(f"Image {i + 1}", w, label_h)
        out[gap + label_h : gap + label_h + height, x : x + w] = im
        x += w + gap
    return out


def composite_on_canvas(
    images: Sequence[np.ndarray], side: int, height: int = 256, gap: int = 8
) -> np.ndarray:
    """:func:`composite`'s layout letterboxed onto a white ``side x side`` canvas.

    Every image is resized once, straight to its size on the canvas: the layout is
    :func:`composite`'s at ``height``, scaled as a whole to fit (labels and gaps too), so
    the second resize of ``letterbox(composite(images), side)`` is saved.
    """
    widths = [max(1, round(im.shape[1] * height / im.shape[0])) for im in images]
    label_h = max(14, height // 10)
    full_w = sum(widths) + gap * (len(images) + 1)
    full_h = height + label_h + 2 * gap
    scale = min(side / full_h, side / full_w)
    h = max(1, round(height * scale))
    g, lab = max(1, round(gap * scale)), max(8, round(label_h * scale))
    sizes = [max(1, round(im.shape[1] * h / im.shape[0])) for im in images]
    while h > 1 and (sum(sizes) + g * (len(images) + 1) > side or h + lab + 2 * g > side):
        h -= 1  # rounding up may overflow the canvas by a pixel or two
        sizes = [max(1, round(im.shape[1] * h / im.shape[0])) for im in images]
    total_w, total_h = sum(sizes) + g * (len(images) + 1), h + lab + 2 * g
    out = np.full((side, side, 3), 255, dtype=np.uint8)
    top, x = (side - total_h) // 2 + g, (side - total_w) // 2 + g
    for i, (im, w) in enumerate(zip(images, sizes, strict=True)):
        out[top : top + lab, x : x + w] = label_strip(f"Image {i + 1}", w, lab)
        out[top + lab : top + lab + h, x : x + w] = resize(im, (h, w))
        x += w + g
    return out


def near_duplicates(patches: Sequence[np.ndarray], threshold: float) -> bool:
    """True if any two patches differ by less than ``threshold`` mean absolute value."""
    flat = np.stack([p.astype(np.int16).reshape(-1) for p in patches])
    for i in range(len(flat) - 1):
        diffs = np.abs(flat[i + 1 :] - flat[i]).mean(axis=1)
        if diffs.min() < threshold:
            return True
    return False


def is_flat(image: np.ndarray, min_std: float) -> bool:
    """True if the image is near-uniform: the pixel std about each channel's mean is small.

    Measured about each channel's own mean, so a flat colour such as (200, 30, 30) is flat,
    on every second pixel of every second row (fast, and the same verdict on real images).
    """
    pixels = image[::2, ::2].reshape(-1, image.shape[-1]).astype(np.float32)
    mean = pixels.mean(axis=0)
    var = (pixels * pixels).mean(axis=0) - mean * mean
    return float(np.sqrt(max(float(var.mean()), 0.0))) < min_std


#: Shape-preserving reorientations: they move the sky of an upright scene to any side.
ORIENTATIONS = ("identity", "flip_left_right", "flip_up_down", "rotate_180")
#: With quarter turns too (the dihedral group; square images only).
DIHEDRAL = (*ORIENTATIONS, "rotate_90", "rotate_270", "transpose", "anti_transpose")


def orient(image: np.ndarray, name: str) -> np.ndarray:
    """Apply one of :data:`DIHEDRAL` (a view: no copy)."""
    ops = {
        "identity": lambda a: a,
        "flip_left_right": lambda a: a[:, ::-1],
        "flip_up_down": lambda a: a[::-1],
        "rotate_180": lambda a: a[::-1, ::-1],
        "rotate_90": lambda a: np.rot90(a, 1),
        "rotate_270": lambda a: np.rot90(a, 3),
        "transpose": lambda a: a.transpose(1, 0, 2),
        "anti_transpose": lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    }
    return ops[name](image)


def orient_box(box: tuple[float, float, float, float], side: float, name: str) -> tuple[float, ...]:
    """Where a box ``(x0, y0, x1, y1)`` of a ``side``-square image lies after :func:`orient`.

    Coordinates are continuous (``0`` to ``side``), so a box keeps its size.
    """
    maps = {
        "identity": lambda x, y: (x, y),
        "flip_left_right": lambda x, y: (side - x, y),
        "flip_up_down": lambda x, y: (x, side - y),
        "rotate_180": lambda x, y: (side - x, side - y),
        "rotate_90": lambda x, y: (y, side - x),
        "rotate_270": lambda x, y: (side - y, x),
        "transpose": lambda x, y: (y, x),
        "anti_transpose": lambda x, y: (side - y, side - x),
    }
    (ax, ay), (bx, by) = maps[name](box[0], box[1]), maps[name](box[2], box[3])
    return min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)


def recorded_turn(ops: Sequence[str]) -> str:
    """The symmetry among a view's recorded augmentations (``identity`` if none)."""
    return next((op for op in ops if op in DIHEDRAL), "identity")


def random_orientation(
    image: np.ndarray, rng: np.random.Generator, quarter_turns: bool = False
) -> tuple[np.ndarray, str]:
    """The image flipped or turned at random (or kept), and which it was.

    Position and Jigsaw use it so that "the sky is at the top" cannot locate a patch: the
    cheap-statistics probe of the shortcut audit would otherwise read the row of a patch
    from its colour. ``quarter_turns`` adds 90-degree turns (square images only). A
    scene of which one window is cut need not be turned whole: draw the name alone
    (:func:`random_orientation_name`) and cut with ``Region.cut``.
    """
    name = random_orientation_name(rng, quarter_turns)
    return np.ascontiguousarray(orient(image, name)), name


def random_orientation_name(rng: np.random.Generator, quarter_turns: bool = False) -> str:
    """The orientation :func:`random_orientation` would apply, drawn the same way.

    For pictures not yet made: ``Region.cut(..., orientation=name)``.
    """
    names = DIHEDRAL if quarter_turns else ORIENTATIONS
    return names[int(rng.integers(len(names)))]


def letterbox(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` scaled to fit a white ``side x side`` canvas, centred (aspect kept)."""
    h, w = image.shape[:2]
    scale = min(side / h, side / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = np.full((side, side, 3), 255, dtype=np.uint8)
    top, left = (side - nh) // 2, (side - nw) // 2
    out[top : top + nh, left : left + nw] = resize(image, (nh, nw))
    return out


PNG_LEVEL = 1
"""Compression level of every PNG the project writes (:func:`png_bytes`). Level 1, the
project's own writer (PNG's Up filter on every row, then ISA-L's deflate where python-isal
is installed, else zlib's level 1), encodes a 224 px photo about 18x faster than PIL's
default level 6 for about 13% more bytes, and a noisy one over 10x faster than zlib's
level 1 for fewer (``benchmarks/export_vs_ssl4rl.py`` measures them); ``ssl-gym export
--png-level`` picks another."""

ISAL_LEVEL = 2
"""ISA-L's level (0 to 3) for PNG level 1: as fast as its level 1 and about as small as
zlib's level 1 (on 224 px photos, tiles and noisy views)."""


def png_encoder(level: int = PNG_LEVEL) -> str:
    """What writes PNGs at ``level``, with its version: part of an export's identity.

    The pixels never depend on it, the bytes do: ``isal`` (ISA-L's deflate) and ``zlib``
    write different, equally valid streams.
    """
    if level == 0:
        return "stored"
    if level == 1 and isal_zlib is not None:
        from isal import __version__ as isal_version

        return f"isal {isal_version} level {ISAL_LEVEL}"
    if level == 1:
        return f"zlib {zlib.ZLIB_RUNTIME_VERSION} level 1"
    return f"pillow {Image.__version__} zlib level {level}"


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_bytes(image: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """A uint8 (H, W, 3) image as PNG bytes (deterministic: no timestamps, fixed level).

    Levels 0 and 1 are written here: 0 stores the rows uncompressed; 1 gives every row
    PNG's "Up" filter (its difference from the row above, which is small on photographs)
    and deflates the whole with ISA-L (:data:`ISAL_LEVEL`) or, without python-isal,
    zlib's level 1 (:func:`png_encoder` says which). PIL's encoder instead tries the five
    filters on every row before it compresses, which costs more than the compression
    itself at low levels. Levels 2 to 9 are PIL's encoder at that zlib level: smaller files,
    slower. Every level decodes to the same pixels.

    Args:
        image: The pixels (anything that is not (H, W, 3) goes through PIL).
        level: 0 (none, fastest) to 9 (smallest).

    Raises:
        ValueError: If ``level`` is not an integer from 0 to 9.
    """
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
        raise ValueError(f"png level must be an integer from 0 to 9, got {level!r}")
    pixels = np.ascontiguousarray(image, dtype=np.uint8)
    if level <= 1 and pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.size:
        return _png_rgb(pixels, level)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def _png_rgb(pixels: np.ndarray, level: int) -> bytes:
    """An RGB PNG, every row Up-filtered and deflated (level 1), or stored (level 0)."""
    height, width, _ = pixels.shape
    rows = pixels.reshape(height, width * 3)
    data = np.empty((height, width * 3 + 1), dtype=np.uint8)
    if level:
        data[:, 0] = 2  # the filter byte of every row: Up
        data[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=data[1:, 1:])  # modulo 256, as PNG wants
        if isal_zlib is not None:
            idat = isal_zlib.compress(data, ISAL_LEVEL)  # a zlib stream, as IDAT wants
        else:
            deflate = zlib.compressobj(1)
            idat = deflate.compress(data.data) + deflate.flush()
    else:
        data[:, 0] = 0  # None
        data[:, 1:] = rows
        deflate = zlib.compressobj(0)
        idat = deflate.compress(data.data) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"".join(
        (_PNG_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", idat), _chunk(b"IEND", b""))
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, type, data and the CRC of type and data."""
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_data_url(image: np.ndarray | bytes) -> str:
    """An image (an array, or PNG bytes already encoded) as a ``data:image/png`` URL."""
    data = image if isinstance(image, bytes) else png_bytes(image)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


# --- hint marks ----------------------------------------------------------------------------

#: The colour of the marks hints draw (with a dark edge, so they show on any picture).
MARK = (255, 0, 255)
_MARK_EDGE = (0, 0, 0)


def mark_box(
    image: np.ndarray, box: tuple[float, float, float, float], width: int = 2
) -> np.ndarray:
    """A copy of ``image`` with the outline of ``box`` (left, top, right, bottom) drawn."""
    pil = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(pil)
    left, top, right, bottom = box
    draw.rectangle((left, top, right, bottom), outline=_MARK_EDGE, width=width + 2)
    draw.rectangle((left + 1, top + 1, right - 1, bottom - 1), outline=MARK, width=width)
    return np.asarray(pil, dtype=np.uint8).copy()


def mark_line(
    image: np.ndarray,
    start: tuple[float, float],
    end: tuple[float, float],
    width: int = 3,
    arrow: bool = False,
) -> np.ndarray:
    """A copy of ``image`` with a line from ``start`` to ``end`` (x, y), and an arrowhead."""
    pil = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(pil)
    head: list[tuple[float, float]] = []
    if arrow:
        (x0, y0), (x1, y1) = start, end
        length = max(1e-6, float(np.hypot(x1 - x0, y1 - y0)))
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        size = max(6.0, 0.12 * length)
        back = (x1 - size * ux, y1 - size * uy)
        head = [(x1, y1), (back[0] - size * uy / 2, back[1] + size * ux / 2)]
        head.append((back[0] + size * uy / 2, back[1] - size * ux / 2))
    draw.line((start, end), fill=_MARK_EDGE, width=width + 2)
    draw.line((start, end), fill=MARK, width=width)
    if head:
        draw.polygon(head, fill=MARK, outline=_MARK_EDGE)
    return np.asarray(pil, dtype=np.uint8).copy()


def mark_cross(
    image: np.ndarray, box: tuple[float, float, float, float], width: int = 3
) -> np.ndarray:
    """A copy of ``image`` with both diagonals of ``box`` (left, top, right, bottom) drawn."""
    left, top, right, bottom = box
    out = mark_line(image, (left, top), (right, bottom), width)
    return mark_line(out, (left, bottom), (right, top), width)


def mark_cell_map(
    image: np.ndarray, corner: tuple[int, int], size: int, shape: tuple[int, int], cell: int
) -> np.ndarray:
    """A copy of ``image`` with a small map of a ``rows x cols`` grid, ``cell`` filled.

    The map is ``size`` pixels wide with its top-left at ``corner`` (x, y): a dark frame and
    grid lines, white cells, the given cell (row-major) in the mark colour.
    """
    rows, cols = shape
    pil = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(pil)
    x0, y0 = corner
    cw, ch = size / cols, size * rows / cols / rows
    draw.rectangle((x0, y0, x0 + size, y0 + ch * rows), fill=(255, 255, 255), outline=_MARK_EDGE)
    r, c = divmod(cell, cols)
    draw.rectangle(
        (x0 + c * cw, y0 + r * ch, x0 + (c + 1) * cw, y0 + (r + 1) * ch),
        fill=MARK,
        outline=_MARK_EDGE,
    )
    for k in range(1, cols):
        draw.line((x0 + k * cw, y0, x0 + k * cw, y0 + ch * rows), fill=_MARK_EDGE)
    for k in range(1, rows):
        draw.line((x0, y0 + k * ch, x0 + size, y0 + k * ch), fill=_MARK_EDGE)
    return np.asarray(pil, dtype=np.uint8).copy()


# --- sprites: rings and label letters drawn onto views ------------------------------------

#: An RGB colour.
Colour = tuple[int, int, int]


@lru_cache(maxsize=16)
def ring_sprite(radius: int, colours: tuple[Colour, Colour]) -> Image.Image:
    """A ring (colour, then outline colour) on a clear ground, centred on its middle pixel."""
    r, width = radius + 1, max(2, radius // 3)
    sprite = Image.new("RGBA", (2 * r + 1, 2 * r + 1), (0, 0, 0, 0))
    draw = ImageDraw.Draw(sprite)
    draw.ellipse((0, 0, 2 * r, 2 * r), outline=(*colours[1], 255), width=width + 2)
    draw.ellipse((1, 1, 2 * r - 1, 2 * r - 1), outline=(*colours[0], 255), width=width)
    return sprite


def paste_centred(pil: Image.Image, sprite: Image.Image, point: np.ndarray) -> None:
    """Paste a square sprite centred on the pixel that holds ``point``."""
    half = sprite.width // 2
    x, y = (int(v) for v in np.floor(point))
    pil.paste(sprite, (x - half, y - half), sprite)


@lru_cache(maxsize=64)
def letter_sprite(letter: str, size: int, colours: tuple[Colour, Colour]) -> Image.Image:
    """A label letter (fill, then outline colour) on a clear ground, cropped to its ink."""
    left, top, right, bottom = _letter_bbox(letter, size)
    sprite = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
    ImageDraw.Draw(sprite).text(
        (-left, -top),
        letter,
        fill=(*colours[0], 255),
        font=font(size),
        stroke_width=_stroke(size),
        stroke_fill=(*colours[1], 255),
    )
    return sprite


def _stroke(size: int) -> int:
    return max(1, size // 10)


@lru_cache(maxsize=64)
def _letter_bbox(letter: str, size: int) -> tuple[int, int, int, int]:
    """Ink box of a letter drawn at the origin (with its outline stroke)."""
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    box = draw.textbbox((0, 0), letter, font=font(size), stroke_width=_stroke(size))
    return int(box[0]), int(box[1]), int(box[2]), int(box[3])


def letter_size(letter: str, size: int) -> tuple[int, int]:
    """Width and height of a label letter's ink (with its outline)."""
    left, top, right, bottom = _letter_bbox(letter, size)
    return right - left, bottom - top
