"""The core of ssl_gym: puzzles, instances, verdicts, answer formats and rewards.

A puzzle family is a pure object (numpy only; no gymnasium, no torch):

- ``generate(rng, source) -> Instance``: draw images from an image source, build a
  puzzle whose answer is known by construction, reject and resample ambiguous ones;
- ``parse(text) -> solution | None``: read the family's answer out of the answer text;
- ``score(instance, solution) -> float`` in ``[0, 1]``;
- ``hint(instance, level) -> str | None``: graded hints for multi-turn play;
- ``verify(instance, completion) -> Verdict``: all of the above composed with the answer
  format (``tags``, ``boxed``, ``plain``) and the reward weights.

Families subclass :class:`Puzzle` and implement ``_draft`` (one attempt at an instance,
raising :class:`Rejected` when the draw is ambiguous) instead of ``generate``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import warnings
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import numpy as np

if TYPE_CHECKING:
    from ssl_gym.images.base import ImageSource

ANSWER_FORMATS = ("tags", "boxed", "plain")
PROMPT_STYLES = ("ssl4rl", "ssl_r1", "plain")
DIFFICULTIES = ("easy", "medium", "hard")

#: Longest answer text (inside the answer block) that is still read; longer is a parse error.
MAX_ANSWER_CHARS = 2000

FORMAT_INSTRUCTIONS = {
    "tags": (
        "You FIRST think about the reasoning process as an internal monologue and then "
        "provide the final answer. The reasoning process MUST BE enclosed within "
        "<think> </think> tags. The final answer MUST BE put in <answer> </answer> tags."
    ),
    "boxed": (
        "Please reason step by step inside <think> </think> tags, and put your final "
        "answer within \\boxed{}."
    ),
    "plain": "Reply with the answer only.",
}


# --- validation helpers (shared by every family's config) -------------------------------


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``options`` to ``name``, else ``""``.

    Case is ignored, and a glob's wildcards are dropped before comparing.
    """
    pool = {o.lower(): o for o in options}
    key = name.lower().replace("*", "").replace("?", "")
    close = difflib.get_close_matches(key, list(pool), n=2, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {' or '.join(repr(pool[c]) for c in close)}?)"


def check_choice(name: str, value: object, options: Sequence[object]) -> None:
    """Raise ``ValueError`` naming the valid options when ``value`` is not one of them.

    Booleans and numbers are told apart (``1`` is not ``True``), as JSON tells them apart.
    """
    is_bool = isinstance(value, bool)
    if value not in options or is_bool != any(isinstance(o, bool) and o == value for o in options):
        valid = ", ".join(repr(o) for o in options)
        raise ValueError(f"{name}={value!r} is not valid; choose one of: {valid}")


def check_layout(
    config: Any, layouts: Sequence[str], renamed: Mapping[str, str] | None = None
) -> None:
    """Check ``config.layout``, renaming a family's retired name (``renamed``) with a warning.

    The warning is a ``DeprecationWarning``. For a frozen config's ``__post_init__``:
    ``images`` (each panel its own image), ``composite`` (one labelled picture of the
    panels) and ``overlay`` (the panels in place on one picture, lines drawn over it) mean
    the same in every family.
    """
    new = (renamed or {}).get(config.layout)
    if new is not None:
        warnings.warn(
            f"layout={config.layout!r} is now layout={new!r}", DeprecationWarning, stacklevel=4
        )
        object.__setattr__(config, "layout", new)
    check_choice("layout", config.layout, layouts)


def check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    """Raise ``ValueError`` unless ``value`` is an int in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f" and <= {high}"
        raise ValueError(f"{name} must be >= {low}{upper}, got {value}")


def check_float(name: str, value: object, low: float, high: float) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(float(value)) or not low <= float(value) <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


# --- configuration -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PuzzleConfig:
    """Settings every family shares; each family's config extends it."""

    size: int = 224
    """Side in pixels of the square image each puzzle is cut from."""
    answer_format: str = "tags"
    """Where the answer goes: ``tags`` (<think>/<answer>), ``boxed`` (\\boxed{}) or ``plain``."""
    prompt_style: str = "ssl4rl"
    """Wording of the question: ``ssl4rl``, ``ssl_r1`` (the papers' wording) or ``plain``."""
    accuracy_weight: float = 1.0
    """Weight of the puzzle score in the reward."""
    format_weight: float = 0.0
    """Weight of the format term (1 when the completion has exactly one answer block)."""
    max_resamples: int = 100
    """Ambiguous draws rejected before generation gives up with an error."""

    def __post_init__(self) -> None:
        check_int("size", self.size, 16, 4096)
        check_choice("answer_format", self.answer_format, ANSWER_FORMATS)
        check_choice("prompt_style", self.prompt_style, PROMPT_STYLES)
        check_float("accuracy_weight", self.accuracy_weight, 0.0, 1e6)
        check_float("format_weight", self.format_weight, 0.0, 1e6)
        check_int("max_resamples", self.max_resamples, 0)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of the settings this config accepts."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_overrides(cls, **overrides: Any) -> PuzzleConfig:
        """Build a config, rejecting unknown keys with the list of valid ones."""
        unknown = sorted(set(overrides) - set(cls.field_names()))
        if unknown:
            valid = ", ".join(sorted(cls.field_names()))
            hint = did_you_mean(unknown[0], cls.field_names())
            raise ValueError(
                f"unknown setting(s) {unknown} for {cls.__name__}{hint}; valid: {valid}"
            )
        return cls(**overrides)


@dataclass(frozen=True)
class Preset:
    """A named configuration of a family; each preset becomes a registered id."""

    difficulty: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        check_choice("difficulty", self.difficulty, DIFFICULTIES)


def preset(difficulty: str, description: str = "", **overrides: Any) -> Preset:
    """Shorthand for ``Preset(difficulty, overrides, description)``."""
    return Preset(difficulty, dict(overrides), description)


# --- instances and verdicts --------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    """One puzzle: what the model sees and what the verifier needs."""

    family: str
    images: tuple[np.ndarray, ...]
    """Observation images, uint8 (H, W, 3)."""
    question: str
    """The task in the prompt style's wording, without the answer-format instruction."""
    prompt: str
    """The full prompt: question plus answer-format instruction."""
    answer: str
    """Ground truth as answer text (what the oracle writes inside the answer block)."""
    solution: Any
    """Ground truth in structured form (JSON primitives), as ``parse`` returns it."""
    choices: tuple[str, ...] | None = None
    """The finite list of valid answers, when there is one."""
    pattern: str | None = None
    """A regular expression of valid answers, when there is no finite list."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """JSON-serialisable facts: chance score, rejections, generation details.

    Every family's instances record their provenance as ``source_keys``: the keys
    (``ImageSource.draw``) of the source pictures the instance was cut from, as a list
    of str, the scene first (the one picture of a one-image family, the reference or
    main picture of a family that compares several); a family documents what follows.
    """


@dataclass(frozen=True)
class Verdict:
    """The verifier's judgement of one completion."""

    reward: float
    score: float
    """Puzzle score in [0, 1] (accuracy, partial credit included)."""
    format_ok: bool
    parsed: Any
    answer_text: str | None
    parse_error: str | None
    components: Mapping[str, float]
    """Weighted parts of the reward: ``accuracy`` and ``format``."""


@dataclass(frozen=True)
class Hint:
    """A hint for multi-turn play: marks drawn on the images, and a text that points at them.

    The text is the same for every instance of a family at a given level ("the marked
    region of the reference..."), so that it can never name or narrow the answer by
    itself; what the hint says about this instance is in ``images``, which replace the
    observation's images for the next turn (same count and shapes).
    """

    text: str
    images: tuple[np.ndarray, ...] | None = None


PART_KINDS = ("choice", "permutation", "flip", "label")


@dataclass(frozen=True)
class Parts:
    """An instance cut into the pieces the strong audit's probes look at one at a time.

    ``kind`` says how the parts carry the answer:

    - ``choice``: one part per option, in option order; label ``"1"`` on the right one;
    - ``permutation``: each shown tile labelled with the 0-based cell it belongs in;
    - ``flip``: each tile labelled ``none`` or the direction it was flipped in;
    - ``label``: one part whose label is the answer text, or no part at all when every
      part of the observation is the content the puzzle asks to read (Rotation).
    """

    kind: str
    parts: tuple[np.ndarray, ...]
    labels: tuple[str, ...]
    reference: np.ndarray | None = None
    """The context the parts are compared with (anchor view, masked picture, full image)."""
    points: tuple[tuple[float, ...], ...] | None = None
    """Drawn geometry of each part (where its marker or label sits), in pixels."""
    anchor: tuple[float, ...] = ()
    """Drawn geometry of the instance itself (the marked point), in pixels."""
    sources: tuple[str, ...] | None = None
    """The source-picture key of each part (:meth:`ImageSource.draw`)."""
    reference_source: str | None = None
    """The source-picture key of the reference."""

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, PART_KINDS)
        if len(self.parts) != len(self.labels):
            raise ValueError("Parts needs one label per part")
        if not self.parts and self.kind != "label":
            raise ValueError(f"Parts of kind {self.kind!r} need at least one part")


class Rejected(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by ``Puzzle._draft`` when a draw is ambiguous; the puzzle resamples."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- answer formats ----------------------------------------------------------------------

_BOXED_OPEN = "\\boxed{"
_BRACES = re.compile(r"[{}]")


def _tag_blocks(text: str, tag: str) -> list[str]:
    opener, closer = f"<{tag}>", f"</{tag}>"
    blocks, start = [], text.find(opener)
    while start != -1:
        end = text.find(closer, start + len(opener))
        if end == -1:
            break
        blocks.append(text[start + len(opener) : end])
        start = text.find(opener, end + len(closer))
    return blocks


def _boxed_blocks(text: str) -> list[str]:
    """Contents of the outermost boxed groups, braces matched in one pass."""
    if _BOXED_OPEN not in text:
        return []
    match: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACES.finditer(text):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            match[stack.pop()] = m.start()
    blocks, pos = [], text.find(_BOXED_OPEN)
    while pos != -1:
        brace = pos + len(_BOXED_OPEN) - 1
        end = match.get(brace)
        if end is None:
            pos = text.find(_BOXED_OPEN, pos + 1)
            continue
        blocks.append(text[brace + 1 : end])
        pos = text.find(_BOXED_OPEN, end + 1)
    return blocks


def _tags_well_formed(text: str) -> bool:
    counts = [text.count(t) for t in ("<think>", "</think>", "<answer>", "</answer>")]
    if counts != [1, 1, 1, 1]:
        return False
    a, b = text.index("<think>"), text.index("</think>")
    c, d = text.index("<answer>"), text.index("</answer>")
    gaps = (text[:a], text[b + len("</think>") : c], text[d + len("</answer>") :])
    return a < b < c < d and all(not g.strip() for g in gaps)


def extract_answer(completion: str, answer_format: str) -> tuple[str | None, bool, str | None]:
    """Find the answer text in a completion.

    Returns ``(answer_text, format_ok, error)``. The last answer block counts; format
    credit needs exactly one block (and, for ``tags``, one think block before it).
    """
    check_choice("answer_format", answer_format, ANSWER_FORMATS)
    if answer_format == "plain":
        text = completion.strip()
        return (text, True, None) if text else (None, False, "empty completion")
    if answer_format == "tags":
        blocks = _tag_blocks(completion, "answer")
        ok = _tags_well_formed(completion)
        missing = "no <answer>...</answer> block"
    else:
        blocks = _boxed_blocks(completion)
        ok = len(blocks) == 1
        missing = "no \\boxed{...} block"
    if not blocks:
        return None, False, missing
    return blocks[-1].strip(), ok, None


def format_answer(answer: str, answer_format: str) -> str:
    """Write ``answer`` as a well-formed completion in the given format (the oracle's)."""
    check_choice("answer_format", answer_format, ANSWER_FORMATS)
    if answer_format == "tags":
        return f"<think>I know the answer.</think> <answer>{answer}</answer>"
    if answer_format == "boxed":
        return f"<think>I know the answer.</think> \\boxed{{{answer}}}"
    return answer


def printable(text: str, limit: int = 60) -> str:
    """``text`` reduced to printable ASCII and at most ``limit`` characters (for echoes)."""
    kept = "".join(ch for ch in text if " " <= ch <= "~")
    return kept if len(kept) <= limit else kept[: limit - 3] + "..."


def not_right(verdict: Verdict) -> str:
    """The reply to a wrong answer in multi-turn play: that it is not right, no more.

    It never tells how close the answer was (a count of tiles in place would let a
    player who never looks search the answers by the replies alone), and it is the same
    for every family.
    """
    if verdict.parsed is None:
        why = printable(verdict.parse_error or "", 120)
        return f"I could not read an answer from your reply ({why})."
    return f"Your answer {printable(verdict.answer_text or '')!r} is not right."


def compose_reward(score: float, format_ok: bool, cfg: PuzzleConfig) -> dict[str, float]:
    """The weighted reward components; the reward is their sum."""
    return {
        "accuracy": cfg.accuracy_weight * float(score),
        "format": cfg.format_weight * float(format_ok),
    }


# --- multiple choice (shared by the choice families) ------------------------------------

LETTERS = "ABCDEFGH"
_LETTER = re.compile(r"(?<![A-Za-z])([A-H])(?![A-Za-z])")


def letters(k: int) -> tuple[str, ...]:
    """The first ``k`` option letters: ``("A", "B", ...)``."""
    check_int("number of options", k, 2, len(LETTERS))
    return tuple(LETTERS[:k])


def parse_letter(text: str, options: Sequence[str]) -> str | None:
    """The one option letter named in ``text`` (``B``, ``(B)``, ``Option B``, ``b``).

    Capital letters standing alone count; a lone lowercase letter counts only when it is the
    whole answer (``b``), so articles such as "a" are never read as options. Text naming
    two different options does not parse.
    """
    stripped = text.strip().strip(".()[]*:").strip()
    if len(stripped) == 1 and stripped.upper() in options:
        return stripped.upper()
    found = {m for m in _LETTER.findall(text[:400]) if m in options}
    return found.pop() if len(found) == 1 else None


# --- the puzzle --------------------------------------------------------------------------

C = TypeVar("C", bound=PuzzleConfig)


class Puzzle(ABC, Generic[C]):
    """A family of verifiable visual puzzles. Subclasses set the class attributes."""

    family: ClassVar[str]
    """Family name as it appears in ids, e.g. ``Jigsaw``."""
    version: ClassVar[int] = 0
    """Bumped when generation or scoring changes; the ``vN`` of every id of the family."""
    hint_version: ClassVar[int | None] = None
    """The ``vN`` of the family's ``-Hint`` ids when it differs from :attr:`version`: bumped
    when hinted play's rewards change but the puzzles do not."""
    config_cls: ClassVar[type[PuzzleConfig]]
    presets: ClassVar[Mapping[str, Preset]]

    def __init__(self, config: C) -> None:
        if not isinstance(config, self.config_cls):
            raise TypeError(f"{type(self).__name__} needs a {self.config_cls.__name__}")
        self.config: C = config

    # -- what a family implements --

    @property
    @abstractmethod
    def chance_score(self) -> float:
        """Expected score of a uniformly random valid answer."""

    @abstractmethod
    def image_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """Shapes of the observation images; fixed for a config."""

    @abstractmethod
    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        """One attempt at an instance; raise :class:`Rejected` if it is ambiguous."""

    @abstractmethod
    def parse(self, text: str) -> Any | None:
        """Read a solution from answer text; ``None`` when it cannot be read."""

    @abstractmethod
    def score(self, instance: Instance, solution: Any) -> float:
        """Score a parsed solution in [0, 1]."""

    @abstractmethod
    def hint(self, instance: Instance, level: int) -> Hint | str | None:
        """The ``level``-th hint (0-based), or ``None`` when there are no more.

        A :class:`Hint` (images with marks, and a fixed text), or text alone.
        """

    @abstractmethod
    def parts(self, instance: Instance) -> Parts:
        """The instance cut into its parts, for the strong audit (``ssl_gym.audit``)."""

    # -- shared machinery --

    def generate(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        """Draw an unambiguous instance, resampling rejected draws."""
        rejections: Counter[str] = Counter()
        for _ in range(self.config.max_resamples + 1):
            try:
                inst = self._draft(rng, source)
            except Rejected as why:
                rejections[why.reason] += 1
                continue
            meta = {
                **inst.metadata,
                "rejections": sum(rejections.values()),
                "rejection_reasons": dict(rejections),
            }
            return dataclasses.replace(inst, metadata=meta)
        raise RuntimeError(
            f"{self.family}: no unambiguous instance in {self.config.max_resamples + 1} draws "
            f"(rejections: {dict(rejections)}); the image source "
            f"{getattr(source, 'spec', source)!r} may be too uniform for this configuration"
        )

    def make_instance(
        self,
        images: Sequence[np.ndarray],
        question: str,
        solution: Any,
        answer: str,
        choices: Sequence[str] | None = None,
        pattern: str | None = None,
        **metadata: Any,
    ) -> Instance:
        """Assemble an instance: adds the format instruction and the standard metadata."""
        prompt = f"{question}\n{FORMAT_INSTRUCTIONS[self.config.answer_format]}"
        meta = {"family": self.family, "chance_score": self.chance_score, **metadata}
        return Instance(
            family=self.family,
            images=tuple(np.ascontiguousarray(im, dtype=np.uint8) for im in images),
            question=question,
            prompt=prompt,
            answer=answer,
            solution=solution,
            choices=None if choices is None else tuple(choices),
            pattern=pattern,
            metadata=meta,
        )

    def verify(self, instance: Instance, completion: str) -> Verdict:
        """Judge a completion: extract, parse, score, compose the reward."""
        if not isinstance(completion, str):
            raise TypeError(f"a completion must be a str, got {type(completion).__name__}")
        text, format_ok, error = extract_answer(completion, self.config.answer_format)
        parsed = None
        if text is not None and len(text) > MAX_ANSWER_CHARS:
            error, format_ok = f"answer longer than {MAX_ANSWER_CHARS} characters", False
        elif text is not None:
            parsed = self.parse(text)
            if parsed is None:
                error = f"could not read a {self.family} answer from {text[:80]!r}"
        score = 0.0 if parsed is None else float(self.score(instance, parsed))
        format_ok = format_ok and parsed is not None
        parts = compose_reward(score, format_ok, self.config)
        return Verdict(sum(parts.values()), score, format_ok, parsed, text, error, parts)

    def answer_count(self, instance: Instance) -> int | None:
        """How many distinct answers a player could try (``None``: too many to try)."""
        return None if instance.choices is None else len(instance.choices)

    def credit(self, instance: Instance) -> np.ndarray | None:
        """The credit matrix ``S[a, g]``: the score of choice ``g`` were choice ``a`` right.

        ``None`` (the default): no partial credit with a structure to exploit, or no list
        of choices. Multi-turn play uses it to price a retry against the blind player that
        orders its answers to collect the most partial credit (:mod:`ssl_gym.multiturn`).
        """
        return None

    def random_answer(self, instance: Instance, rng: np.random.Generator) -> str:
        """A uniformly random valid answer text (the random policy's; scores chance)."""
        if instance.choices is None:
            raise NotImplementedError(f"{self.family} must define random_answer")
        return instance.choices[int(rng.integers(len(instance.choices)))]

    def oracle(self, instance: Instance) -> str:
        """A completion that scores 1.0 in this puzzle's answer format."""
        return format_answer(instance.answer, self.config.answer_format)

    def style(self, texts: Mapping[str, str], **values: Any) -> str:
        """Pick the question template of the configured prompt style and fill it in."""
        return texts[self.config.prompt_style].format(**values)


class ChoicePuzzle(Puzzle[C]):
    """A multiple-choice puzzle: ``num_options`` lettered options (A, B, ...), one right.

    The solution is the right letter; reading, scoring and chance are shared, and the
    families write generation, image shapes and hints.
    """

    @property
    @abstractmethod
    def num_options(self) -> int:
        """How many options (K) an instance offers."""

    @property
    def options(self) -> tuple[str, ...]:
        """The option letters (the valid answers)."""
        return letters(self.num_options)

    @property
    def chance_score(self) -> float:
        """One over the number of options."""
        return 1.0 / self.num_options

    def parse(self, text: str) -> str | None:
        """The one option letter named in the answer."""
        return parse_letter(text, self.options)

    def score(self, instance: Instance, solution: Any) -> float:
        """1 for the right letter, else 0."""
        return float(solution == instance.solution)
