"""``ssl-gym gallery``: one HTML page with examples of every registered id.

For each id (globs select them) and each of ``--n`` seeds the page shows the rendered
observation, the prompt and the ground-truth answer. For the multi-turn ``-Hint`` ids it
also shows the episode of a scripted player that answers wrong first (twice where the
episode allows it) and then right, as a strip of turns: each completion, the env's reply
(feedback, hint, format instruction) and the final reward with the hint cost taken off.

    ssl-gym gallery --out outputs/gallery-html --n 3 --seed 0 --ids 'SSL/Jigsaw-*'

Every text is HTML-escaped. Pictures are PNG files in ``OUT/img/``; ``OUT/index.html``
is written atomically (temporary file, then rename). A small script in the page counts
the pictures that loaded and any page error, and writes the result into the page's
``data-*`` attributes and its footer, so a headless browser can check the page.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import html
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from PIL import Image
from rich.console import Console
from rich.markup import escape
from rich.progress import track

import ssl_gym
from ssl_gym.core import Instance, Puzzle, format_answer
from ssl_gym.envs import MixtureEnv, PuzzleEnv, entries, mixture_ids, unknown_id
from ssl_gym.files import write_atomic

#: How many wrong answers the scripted player gives before the right one (when allowed).
WRONG_TURNS = 2

console = Console()


@dataclass(frozen=True)
class Turn:
    """One answer of the scripted player and what the env made of it."""

    completion: str
    """What the player wrote."""
    reply: str
    """The env's next prompt (feedback and hint), or ``""`` when the episode ended."""
    reward: float
    """The step's reward (0 until the last step)."""
    score: float
    """The verifier's score of this answer."""
    picture: str = ""
    """The images the next turn shows (the hint's marks drawn), relative to the page;
    ``""`` when the episode ended or the images did not change."""


@dataclass(frozen=True)
class Example:
    """One instance of one id, as the page shows it."""

    env_id: str
    seed: int
    picture: str
    """Path of the PNG, relative to the page."""
    size: tuple[int, int]
    """Width and height of the picture in pixels."""
    prompt: str
    answer: str
    turns: tuple[Turn, ...] = ()


# --- choosing ids ---------------------------------------------------------------------------


def gallery_ids(patterns: Sequence[str]) -> list[str]:
    """Every id (``-Hint`` twins and named mixtures included) matching one of ``patterns``.

    ``SSL/Mix-v1`` is left out: it has no puzzles until it is given ``ids=``.

    Raises:
        ValueError: no id matches.
    """
    every = [e.id for e in entries(hinted=True)] + [m for m in mixture_ids() if m != "SSL/Mix-v1"]
    chosen = [i for i in every if any(fnmatch.fnmatch(i, p) for p in patterns)]
    if not chosen:
        raise ValueError(unknown_id(" ".join(patterns), "id or pattern"))
    return chosen


def _is_hinted(env_id: str) -> bool:
    return "-Hint-v" in env_id


# --- playing and rendering ------------------------------------------------------------------


def wrong_completion(
    puzzle: Puzzle, inst: Instance, rng: np.random.Generator, tried: set[str]
) -> str:
    """A well-formed completion with a wrong answer, not one of ``tried`` when possible."""
    if inst.choices:
        wrong = [c for c in inst.choices if c != inst.answer]
        fresh = [c for c in wrong if c not in tried] or wrong
        answer = fresh[int(rng.integers(len(fresh)))]
    else:
        answer = puzzle.random_answer(inst, rng)
        for _ in range(50):
            if answer != inst.answer and answer not in tried:
                break
            answer = puzzle.random_answer(inst, rng)
    tried.add(answer)
    return format_answer(answer, puzzle.config.answer_format)


def scripted_play(env: PuzzleEnv, seed: int, out: Path | None = None) -> tuple[Turn, ...]:
    """Play the current episode: wrong answers first (up to ``WRONG_TURNS``), then right.

    With ``out`` and ``render_mode="rgb_array"``, the images each hint brings are saved
    under ``out/img`` and named in the turn.
    """
    inst = env.instance
    if inst is None:
        raise RuntimeError("reset() the env before playing it")
    rng, tried = np.random.default_rng([seed, 1]), set[str]()
    turns: list[Turn] = []
    max_turns, done = 2, False
    while not done:
        wrong = len(turns) < WRONG_TURNS and len(turns) + 1 < max_turns
        text = wrong_completion(env.puzzle, inst, rng, tried) if wrong else env.puzzle.oracle(inst)
        obs, reward, terminated, truncated, info = env.step(text)
        done = terminated or truncated
        max_turns = int(info["max_turns"])
        picture = env.render() if out is not None and not done else None
        rel = "" if picture is None or out is None else save_picture(picture, out)
        reply = "" if done else obs["prompt"]
        turns.append(Turn(text, reply, float(reward), info["score"], rel))
    return tuple(turns)


def save_picture(picture: np.ndarray, out: Path) -> str:
    """Write ``picture`` as ``out/img/<content hash>.png`` once; returns the relative path.

    Named by content, so the ``-Hint`` twin of an id (same seed, same pixels) shares the
    file. PNG compression level 1: several times faster than the default, a little larger.
    """
    rel = f"img/{hashlib.sha1(picture.tobytes()).hexdigest()[:20]}.png"
    path = out / rel
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(path, compress_level=1)
    return rel


def make_example(env_id: str, seed: int, out: Path, image_source: str) -> Example:
    """Reset ``env_id`` with ``seed``, save its picture under ``out/img``, play it if hinted."""
    env = gym.make(env_id, render_mode="rgb_array", image_source=image_source).unwrapped
    if not isinstance(env, PuzzleEnv | MixtureEnv):
        raise TypeError(f"{env_id} is not an ssl_gym env")
    obs, info = env.reset(seed=seed)
    picture = env.render()
    if picture is None:
        raise RuntimeError(f"{env_id} rendered nothing")
    rel = save_picture(picture, out)
    turns: tuple[Turn, ...] = ()
    if _is_hinted(env_id) and isinstance(env, PuzzleEnv):
        turns = scripted_play(env, seed, out)
    size = (picture.shape[1], picture.shape[0])
    return Example(env_id, seed, rel, size, obs["prompt"], info["answer"], turns)


# --- the page -------------------------------------------------------------------------------

STYLE = """
body {
  font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif;
  margin: 0; color: rgba(0, 0, 0, 0.87); line-height: 1.5;
}
main { margin: 0 2rem 2rem; }
header.bar { background: #4051b5; color: #fff; padding: 0.6rem 2rem; display: flex;
  align-items: baseline; gap: 1.5rem; box-shadow: 0 0 0.2rem rgba(0, 0, 0, 0.2); }
header.bar h1 { font-size: 1.1rem; font-weight: 500; margin: 0; }
header.bar a { color: #fff; opacity: 0.85; }
a { color: #4051b5; text-decoration: none; }
a:hover { text-decoration: underline; }
h2 { font-weight: 400; color: rgba(0, 0, 0, 0.7); }
nav { columns: 4 16rem; font-size: 0.85rem; margin: 1rem 0; }
nav a { display: block; }
section.id { border-top: 1px solid #ccc; padding-top: 0.5rem; margin-top: 1.5rem; }
.meta { color: #555; font-size: 0.9rem; }
.examples { display: flex; flex-wrap: wrap; gap: 1.5rem; }
.example { flex: 1 1 28rem; max-width: 100%; }
.example img { display: block; max-width: 100%; height: auto; border: 1px solid #ddd; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: 0.5rem; font-size: 0.8rem; }
.strip { display: flex; gap: 0.75rem; overflow-x: auto; padding-bottom: 0.5rem; }
.turn { flex: 0 0 18rem; border: 1px solid #ccc; border-radius: 6px; padding: 0.5rem; }
.turn h4 { margin: 0 0 0.3rem; }
.turn img { display: block; max-width: 100%; height: auto; border: 1px solid #ddd; }
.turn.final { border-color: #2a7; }
footer { margin-top: 2rem; color: #555; }
"""

#: Counts the pictures that loaded and the page's errors into ``data-*`` attributes.
CHECK_SCRIPT = """
const errors = [];
window.addEventListener("error", (e) => {
  const t = e.target;
  errors.push(t && t.tagName ? "failed to load " + (t.src || t.tagName) : String(e.message));
}, true);
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter((im) => im.complete && im.naturalWidth > 0).length;
  const body = document.body;
  body.dataset.imagesTotal = imgs.length;
  body.dataset.imagesLoaded = ok;
  body.dataset.errors = JSON.stringify(errors);
  body.dataset.status = ok === imgs.length && errors.length === 0 ? "ok" : "errors";
  document.getElementById("status").textContent = ok + " of " + imgs.length +
    " pictures loaded" + (errors.length ? "; errors: " + errors.join("; ") : "; no errors");
});
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _anchor(env_id: str) -> str:
    return env_id.replace("/", "-")


def render_turns(turns: Sequence[Turn]) -> str:
    """The strip of turns of a scripted episode."""
    cards = []
    for k, t in enumerate(turns, start=1):
        env_text = t.reply or f"episode over: reward {t.reward:.2f} (score {t.score:.2f})"
        cls = "turn" if t.reply else "turn final"
        shown = (
            f'<img src="{_esc(t.picture)}" alt="the images after turn {k}">' if t.picture else ""
        )
        cards.append(
            f'<div class="{cls}"><h4>Turn {k}</h4><b>agent</b><pre>{_esc(t.completion)}</pre>'
            f"<b>env</b><pre>{_esc(env_text)}</pre>{shown}</div>"
        )
    return f'<div class="strip">{"".join(cards)}</div>'


def render_example(ex: Example) -> str:
    """One example: picture, prompt, answer and, for hinted ids, the turns."""
    width, height = ex.size
    alt = f"{ex.env_id}, seed {ex.seed}"
    parts = [
        f'<div class="example"><p class="meta">seed {ex.seed} '
        f"(<code>ssl-gym show {_esc(ex.env_id)} --seed {ex.seed}</code>)</p>",
        f'<img src="{_esc(ex.picture)}" width="{width}" height="{height}" alt="{_esc(alt)}">',
        f"<b>prompt</b><pre>{_esc(ex.prompt)}</pre>",
        f"<b>answer</b> <code>{_esc(ex.answer)}</code>",
    ]
    if ex.turns:
        parts.append("<p><b>a scripted episode: wrong, then right</b></p>")
        parts.append(render_turns(ex.turns))
    parts.append("</div>")
    return "".join(parts)


def render_page(
    examples: Sequence[Example], descriptions: dict[str, str], back: str | None = None
) -> str:
    """The whole HTML page: a table of contents, then one section per id.

    ``back`` links the header to a documentation site (the docs' copy of the gallery).
    """
    ids = list(dict.fromkeys(ex.env_id for ex in examples))
    nav = "".join(f'<a href="#{_anchor(i)}">{_esc(i)}</a>' for i in ids)
    sections = []
    for env_id in ids:
        cards = "".join(render_example(ex) for ex in examples if ex.env_id == env_id)
        sections.append(
            f'<section class="id" id="{_anchor(env_id)}"><h2>{_esc(env_id)}</h2>'
            f'<p class="meta">{_esc(descriptions.get(env_id, ""))}</p>'
            f'<div class="examples">{cards}</div></section>'
        )
    title = f"ssl_gym {ssl_gym.__version__} gallery"
    home = f'<a href="{_esc(back)}">documentation</a>' if back else ""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{STYLE}</style>"
        f"<script>{CHECK_SCRIPT}</script></head><body>"
        f'<header class="bar"><h1>{_esc(title)}</h1>{home}</header><main>'
        f"<p>{len(ids)} ids, {len(examples)} examples.</p>"
        f"<nav>{nav}</nav>{''.join(sections)}"
        f'<footer id="status">checking pictures...</footer></main></body></html>\n'
    )


def _descriptions() -> dict[str, str]:
    out = {
        e.id: f"{e.family}, {e.difficulty}, chance {e.chance_score:.3f}: {e.description}"
        for e in entries(hinted=True)
    }
    for m in mixture_ids():
        out[m] = "mixture: one puzzle of several families per episode, one composite image"
    return out


# --- command line ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ssl-gym gallery``."""
    parser = argparse.ArgumentParser(prog="ssl-gym gallery", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="outputs/gallery-html", help="folder for index.html")
    parser.add_argument("--n", type=int, default=3, help="examples per id")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first example")
    parser.add_argument("ids", nargs="*", help="ids or globs (default: all)")
    parser.add_argument("--ids", dest="more_ids", nargs="+", default=[], help="the same")
    parser.add_argument("--image-source", default="procedural", help="image source spec")
    return parser


def build_gallery(
    out: Path,
    ids: Sequence[str],
    n: int,
    seed: int,
    image_source: str = "procedural",
    back: str | None = None,
) -> Path:
    """Write ``out/index.html`` with ``n`` examples (seeds ``seed``...) of each of ``ids``.

    ``back``: a link to the documentation for the header (the docs site's copy).
    """
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    jobs = [(i, seed + k) for i in ids for k in range(n)]
    examples = [
        make_example(env_id, s, out, image_source)
        for env_id, s in track(jobs, description="rendering the gallery", console=console)
    ]
    page = out / "index.html"
    write_atomic(page, render_page(examples, _descriptions(), back))
    return page


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ssl-gym gallery``."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        patterns = [*args.ids, *args.more_ids] or ["*"]
        page = build_gallery(
            Path(args.out), gallery_ids(patterns), args.n, args.seed, args.image_source
        )
    except (ValueError, gym.error.Error) as err:
        console.print(f"[red]error:[/] {escape(str(err))}", highlight=False)
        return 2
    console.print(f"gallery written to {page}", markup=False)
    return 0
