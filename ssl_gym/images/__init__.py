"""Image sources: where puzzles get their pictures from.

A source is chosen by a spec string (see :func:`make_source`):

- ``procedural``: synthetic outdoor scenes, offline and fast (the default);
- ``photos``: scikit-image's bundled photographs (the ``photos`` extra);
- ``folder:PATH``: every image file under a folder;
- ``hf:NAME[:SPLIT[:COLUMN]]``: a Hugging Face dataset (the ``datasets`` extra).

Importing this package is cheap: scikit-image and datasets load on first use.
"""

from __future__ import annotations

from ssl_gym.images.base import ImageSource, fit, to_rgb_array
from ssl_gym.images.procedural import ProceduralSource
from ssl_gym.images.sources import ArraySource, FolderSource, HFDatasetSource, PhotosSource

__all__ = [
    "ArraySource",
    "FolderSource",
    "HFDatasetSource",
    "ImageSource",
    "PhotosSource",
    "ProceduralSource",
    "fit",
    "make_source",
    "to_rgb_array",
]

SPEC_FORMS = ("procedural", "photos", "folder:PATH", "hf:NAME[:SPLIT[:COLUMN]]")


def make_source(spec: str | ImageSource) -> ImageSource:
    """The image source a spec string names; an :class:`ImageSource` passes through.

    Args:
        spec: ``procedural``, ``photos``, ``folder:PATH``, ``hf:NAME[:SPLIT[:COLUMN]]``
            or an image source. Colons inside brackets (``hf:mnist:train[:1000]``) do
            not split.

    Returns:
        The source.

    Raises:
        ValueError: If the spec matches none of the forms.
        ImportError: If the source needs an extra that is not installed.
    """
    if isinstance(spec, ImageSource):
        return spec
    if isinstance(spec, str):
        if spec == "procedural":
            return ProceduralSource()
        if spec == "photos":
            return PhotosSource()
        if spec.startswith("folder:") and len(spec) > len("folder:"):
            return FolderSource(spec[len("folder:") :])
        if spec.startswith("hf:"):
            parts = _split_outside_brackets(spec[len("hf:") :])
            if 1 <= len(parts) <= 3 and all(parts):
                return HFDatasetSource(*parts)
    forms = ", ".join(repr(f) for f in SPEC_FORMS)
    raise ValueError(f"unknown image source {spec!r}; valid forms: {forms}, or an ImageSource")


def _split_outside_brackets(text: str) -> list[str]:
    """Split on ':' except inside [...], so split slices like ``train[:10]`` survive."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(depth - 1, 0)
        elif ch == ":" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts
