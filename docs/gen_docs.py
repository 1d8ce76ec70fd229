"""Generate the Markdown sources of the documentation site (``make docs`` runs it).

    python docs/gen_docs.py --out build/docs
    python -m mkdocs build --strict -f build/docs/mkdocs.yml

Writes ``OUT/src/`` (the pages) and ``OUT/mkdocs.yml`` (inherits the repository's
``mkdocs.yml`` and adds the navigation). Nothing is written inside ``docs/``:

* the hand-written pages in ``docs/*.md`` are copied, with their ``<!-- gen:NAME -->``
  markers replaced by generated Markdown (recipe and option tables, the example files);
* one page per puzzle family, from the family module's docstring, with its registered
  ids, its config fields and a picture (seed 0) with prompt and answer of every preset;
* the list of every registered id, the benchmark tables (every ``benchmarks/results/*.json``)
  and the shortcut audit.

Every page is generated from the code, the recipes and the result files as they are at
build time, so new families, presets, examples and results appear without edits here.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import html
import importlib
import inspect
import json
import os
import re
import shutil
import sys
import tomllib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image

import ssl_gym
from ssl_gym.core import Puzzle
from ssl_gym.envs import EnvEntry, entries, mixture_ids, registered_ids
from ssl_gym.envs.mixture import MIXTURES
from ssl_gym.fields import field_docs
from ssl_gym.puzzles import FAMILIES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"
#: Largest size of the example pictures in the family pages (width, height).
PICTURE_BOX = (960, 320)
MARKER = re.compile(r"<!-- gen:([a-z-]+) -->")


# --- small Markdown helpers -------------------------------------------------------------------


def cell(value: Any) -> str:
    """A value as the text of a Markdown table cell."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        value = f"`{json.dumps(value)}`"
    text = str(value)
    if not (len(text) > 1 and text[0] == text[-1] == "`"):
        text = html.escape(text, quote=False)  # no stray tags such as <think> in the page
    return text.replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fence(text: str, lang: str = "text", title: str = "") -> str:
    """A fenced code block long enough not to be closed by backticks inside ``text``."""
    ticks = "`" * max([3, *(len(m) + 1 for m in re.findall(r"`{3,}", text))])
    head = f'{ticks}{lang} title="{title}"' if title else f"{ticks}{lang}"
    return f"{head}\n{text.rstrip()}\n{ticks}\n"


def slug(name: str) -> str:
    """A file-name-safe lower-case form of a family name or id."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def docstring_body(doc: str) -> tuple[str, str]:
    """Split a module docstring into its first line and the rest (Markdown sections)."""
    first, _, rest = inspect.cleandoc(doc).partition("\n")
    return first.strip(), rest.strip()


def rst_to_markdown(text: str, demote: int = 0) -> str:
    """Docstring text as Markdown: Sphinx roles become code, ``::`` a colon, headings demoted."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    text = re.sub(r"::$", ":", text, flags=re.M)
    if demote:
        text = re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + demote) + " ", text, flags=re.M)
    return text


# --- config fields from the source (field docstrings are not kept at run time) ----------------


def config_table(family: type[Puzzle]) -> str:
    """The config fields of a family: name, default, meaning."""
    docs = field_docs(family.config_cls)
    defaults = family.config_cls()
    rows = [
        (f"`{f.name}`", f"`{getattr(defaults, f.name)!r}`", docs.get(f.name, ""))
        for f in dataclasses.fields(family.config_cls)
    ]
    return table(("field", "default", "meaning"), rows)


# --- family pages -----------------------------------------------------------------------------


def save_picture(picture: np.ndarray, path: Path) -> None:
    """Write a picture, shrunk to fit ``PICTURE_BOX``, as PNG."""
    img = Image.fromarray(picture)
    img.thumbnail(PICTURE_BOX)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, compress_level=1)


def example_section(entry: EnvEntry, img_dir: Path) -> str:
    """One preset: its picture (seed 0), prompt and answer."""
    env = gym.make(entry.id, render_mode="rgb_array")
    obs, info = env.reset(seed=0)
    picture = env.render()
    env.close()
    if not isinstance(picture, np.ndarray):
        raise RuntimeError(f"{entry.id} rendered no picture")
    name = f"{slug(entry.id)}.png"
    save_picture(picture, img_dir / name)
    return (
        f"### {entry.id}\n\n{entry.difficulty}: {entry.description}\n\n"
        f"![{entry.id}, seed 0](img/{name})\n\n"
        f"Prompt:\n\n{fence(obs['prompt'])}\nAnswer: `{info['answer']}`\n"
    )


def ids_table(family: str, every: Sequence[EnvEntry]) -> str:
    """The registered ids of a family, single-turn and multi-turn."""
    rows = [
        (f"`{e.id}`", e.difficulty, e.chance_score, "hints" if e.hinted else "1", e.description)
        for e in every
        if e.family == family
    ]
    return table(("id", "difficulty", "chance", "turns", "description"), rows)


def family_page(family: type[Puzzle], every: Sequence[EnvEntry], img_dir: Path) -> str:
    """A family's page: its docstring, ids, config fields and an example of every preset."""
    module = sys.modules[family.__module__]
    first, body = docstring_body(module.__doc__ or "")
    first = first.removeprefix(f"{family.family}: ")
    first = first[:1].upper() + first[1:]
    examples = [
        example_section(e, img_dir) for e in every if e.family == family.family and not e.hinted
    ]
    return "\n".join(
        [
            f"# {family.family}\n\n{rst_to_markdown(first)}\n",
            f"Module `{family.__module__}`, version {family.version}, "
            f"{len(family.presets)} presets.\n",
            "## Examples of every preset\n\nSeed 0, the default procedural images.\n",
            *examples,
            rst_to_markdown(body) + "\n",
            f"## Registered ids\n\n{ids_table(family.family, every)}",
            "Every id takes config fields as keyword arguments of `gym.make`.\n",
            f"## Config fields\n\n{config_table(family)}",
        ]
    )


def family_pages(src: Path, every: Sequence[EnvEntry]) -> list[str]:
    """Write ``families/*.md`` and their pictures; returns the pages' paths for the nav."""
    paths = []
    for family in FAMILIES.values():
        path = f"families/{slug(family.family)}.md"
        page = family_page(family, every, src / "families/img")
        (src / path).write_text(page, encoding="utf-8")
        paths.append(path)
    return paths


# --- the list of ids --------------------------------------------------------------------------


def ids_page(every: Sequence[EnvEntry]) -> str:
    """Every registered id, with links to the family pages, and the mixtures."""
    rows = [
        (
            f"`{e.id}`",
            f"[{e.family}](families/{slug(e.family)}.md)",
            e.difficulty,
            e.chance_score,
            "hints" if e.hinted else "1",
            e.description,
        )
        for e in every
    ]
    mixes = []
    for mid in mixture_ids():
        name = mid.removeprefix("SSL/Mix-").rsplit("-v", 1)[0]
        spec = MIXTURES.get(name)
        what = (
            ", ".join(f"`{i}`" for i in spec["ids"]) + f" (`{spec['answer_format']}` answers)"
            if spec
            else 'the ids you give: `gym.make("SSL/Mix-v1", ids=[...], weights=[...])`'
        )
        mixes.append((f"`{mid}`", what))
    return (
        f"# Registered ids\n\nssl_gym {ssl_gym.__version__} registers {len(every)} puzzle ids "
        f"and {len(mixes)} mixtures. `ssl-gym list --hints` prints the same list.\n\n"
        + table(("id", "family", "difficulty", "chance", "turns", "description"), rows)
        + "\n## Mixtures\n\nOne puzzle per episode, drawn from several ids, shown as one "
        'composite image of fixed size; `info["task"]` names the family.\n\n'
        + table(("id", "draws from"), mixes)
    )


# --- generated parts of hand-written pages -----------------------------------------------------


def recipes_table() -> str:
    """The settings of every recipe in ``agents/recipes``, one column per recipe."""
    files = sorted((ROOT / "agents" / "recipes").glob("*.toml"))
    if not files:
        return "No recipes found.\n"
    recipes = {f.stem: tomllib.loads(f.read_text(encoding="utf-8")) for f in files}
    keys = list(dict.fromkeys(k for r in recipes.values() for k in r))
    rows = [(f"`{k}`", *(r.get(k, "") for r in recipes.values())) for k in keys]
    notes = "".join(f"* **{f.stem}**: {_toml_comment(f)}\n" for f in files)
    return notes + "\n" + table(("setting", *(f"`{n}`" for n in recipes)), rows)


def _toml_comment(path: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    head = [ln.lstrip("# ").strip() for ln in lines if ln.startswith("#")]
    return html.escape(" ".join(head), quote=False)


def train_options() -> str:
    """Every ``ssl-gym train`` option, from ``agents/config.py`` (run and learner fields)."""
    from agents.config import options

    rows = [
        (f"`--{name.replace('_', '-')}`", f"`{default!r}`", doc)
        for name, _, default, doc in options()
    ]
    return table(("option", "default", "meaning"), rows)


def adapters_section() -> str:
    """The docstring of every public module in ``ssl_gym/adapters``."""
    files = sorted((ROOT / "ssl_gym" / "adapters").glob("[!_]*.py"))
    parts = []
    for f in files:
        doc = ast.get_docstring(ast.parse(f.read_text(encoding="utf-8"))) or ""
        parts.append(f"### `ssl_gym.adapters.{f.stem}`\n\n{rst_to_markdown(doc, 2)}\n")
    return "\n".join(parts) or "No adapters yet.\n"


def examples_section() -> str:
    """Every ``examples/*.py`` file: its docstring, then its code."""
    files = sorted((ROOT / "examples").glob("*.py"))
    if not files:
        return "No example scripts yet.\n"
    parts = []
    for f in files:
        code = f.read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(code)) or ""
        doc = rst_to_markdown(doc, 3)
        parts.append(f"### `examples/{f.name}`\n\n{doc}\n\n{fence(code, 'python', f.name)}")
    return "\n".join(parts)


def family_grid() -> str:
    """The landing page's grid: every family's strip (``docs/strips``), linked to its page."""
    cards = "".join(
        f"[![{name}](strips/{name.lower()}.png)<br>**{name}**](families/{slug(name)}.md)\n"
        f"{{ .family-card }}\n\n"
        for name in FAMILIES
    )
    return f'<div class="family-grid" markdown>\n\n{cards}</div>\n'


GENERATED: dict[str, Callable[[], str]] = {
    "family-grid": family_grid,
    "recipes": recipes_table,
    "train-options": train_options,
    "adapters": adapters_section,
    "examples": examples_section,
}


def expand_markers(text: str, name: str) -> str:
    """Replace every ``<!-- gen:NAME -->`` marker; an unknown NAME is an error."""

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in GENERATED:
            raise ValueError(f"{name}: unknown marker gen:{key}; known: {', '.join(GENERATED)}")
        return GENERATED[key]()

    return MARKER.sub(sub, text)


# --- benchmarks and audit ---------------------------------------------------------------------


def json_tables(data: Any) -> str:
    """Markdown tables for a results JSON, whatever its shape (scalars, maps, records)."""
    if not isinstance(data, dict):
        return _records_or_json(data)
    scalars = [(f"`{k}`", v) for k, v in data.items() if not isinstance(v, dict | list)]
    parts = [table(("name", "value"), scalars)] if scalars else []
    for key, value in data.items():
        if isinstance(value, dict | list):
            parts.append(f"#### `{key}`\n\n{_nested_table(value)}")
    return "\n".join(parts)


def _nested_table(value: dict[str, Any] | list[Any]) -> str:
    if isinstance(value, list):
        return _records_or_json(value)
    if value and all(isinstance(v, dict) for v in value.values()):
        cols = list(dict.fromkeys(k for v in value.values() for k in v))
        rows = [(k, *(v.get(c, "") for c in cols)) for k, v in value.items()]
        return table(("", *cols), rows)
    if all(not isinstance(v, dict | list) for v in value.values()):
        return table(("name", "value"), [(f"`{k}`", v) for k, v in value.items()])
    return fence(json.dumps(value, indent=2), "json")


def _records_or_json(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        cols = list(dict.fromkeys(k for v in value for k in v))
        return table(cols, [[v.get(c, "") for c in cols] for v in value])
    return fence(json.dumps(value, indent=2), "json")


def _script_doc(stem: str) -> str:
    script = ROOT / "benchmarks" / f"{stem}.py"
    if not script.exists():
        return ""
    return (ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or "") + "\n"


def benchmarks_page() -> str:
    """One section per ``benchmarks/results/*.json`` (the audit has its own page)."""
    audits = ("shortcut_audit", "audit")
    files = [f for f in sorted(RESULTS.glob("*.json")) if f.stem not in audits]
    parts = [
        "# Benchmarks\n\nGenerated from `benchmarks/results/*.json` when the docs are built. "
        "`make bench` reruns the env benchmark; each script below says how to run it. "
        "The figures are from the machine that ran them (see each file).\n"
    ]
    for f in files:
        data = json.loads(f.read_text(encoding="utf-8"))
        parts.append(f"## {f.stem}\n\nFile `benchmarks/results/{f.name}`.\n\n{_script_doc(f.stem)}")
        parts.append(json_tables(data))
    if not files:
        parts.append("No benchmark results yet.\n")
    return "\n".join(parts)


def audit_page() -> str:
    """The shortcut audits: what they check (``ssl_gym.audit``) and the latest results."""
    first, body = docstring_body(importlib.import_module("ssl_gym.audit").__doc__ or "")
    parts = [f"# Shortcut audit\n\n{first}\n\n{rst_to_markdown(body)}\n"]
    strong_first, strong_body = docstring_body(
        importlib.import_module("ssl_gym.audit.strong").__doc__ or ""
    )
    parts.append(f"## The strong audit\n\n{strong_first}\n\n{rst_to_markdown(strong_body)}\n")
    parts.append(_strong_results())
    parts.append("## The weak audit\n")
    data_path, md_path = RESULTS / "shortcut_audit.json", RESULTS / "shortcut_audit.md"
    if data_path.exists():
        data = json.loads(data_path.read_text(encoding="utf-8"))
        results = data.get("results", [])
        passed = sum(bool(r.get("passed")) for r in results)
        parts.append(
            f"{passed} of {len(results)} ids pass, on {data.get('n')} instances "
            f"per id (seed {data.get('seed')}), from `benchmarks/results/shortcut_audit.json`.\n"
        )
    if md_path.exists():
        parts.append(md_path.read_text(encoding="utf-8"))
    elif data_path.exists():
        parts.append(json_tables(data))
    else:
        parts.append("No audit results yet: run `ssl-gym audit --out benchmarks/results`.\n")
    return "\n".join(parts)


def _strong_results() -> str:
    """The strong audit's latest table, from ``benchmarks/results/audit.json`` and ``.md``."""
    data_path, md_path = RESULTS / "audit.json", RESULTS / "audit.md"
    if not data_path.exists():
        return "No strong audit results yet: run `python benchmarks/shortcut_audit.py`.\n"
    data = json.loads(data_path.read_text(encoding="utf-8"))
    results = data.get("results", [])
    passed = sum(bool(r.get("passed")) for r in results)
    head = (
        f"### Results\n\n{passed} of {len(results)} (id, source) pairs pass, on "
        f"{data.get('n')} instances each (70% train the probes, 30% score them), sources: "
        f"{', '.join(data.get('sources', []))}. From `benchmarks/results/audit.json`.\n"
    )
    return head + "\n" + (md_path.read_text(encoding="utf-8") if md_path.exists() else "")


def gallery_page(src: Path) -> str:
    """The gallery (``ssl-gym gallery``, one example of every id) and its page in the nav."""
    from ssl_gym.gallery import build_gallery, gallery_ids

    build_gallery(src / "gallery", gallery_ids(["*"]), 1, 0, back="../index.html")
    return (
        "# Gallery\n\nOne example of every id (seed 0, procedural images): the observation, "
        "the prompt and the answer, and for every `-Hint` id a scripted episode (wrong, "
        "then right) with the images each hint brings. `ssl-gym gallery --n 3` writes the "
        "same page with more examples.\n\n"
        "[Open the gallery](gallery/index.html){ .md-button .md-button--primary }\n"
    )


# --- assembling the site ----------------------------------------------------------------------

#: Hand-written pages in nav order (title, file); the generated ones are placed around them.
HAND_WRITTEN = (
    ("Getting started", "index.md"),
    ("Env API", "env-api.md"),
    ("Training", "training.md"),
    ("Evaluation", "evaluation.md"),
    ("Adapters", "adapters.md"),
    ("Training at scale", "scale.md"),
)


def copy_hand_written(src: Path) -> None:
    """Copy ``docs/*.md`` (markers expanded) and any other static files of ``docs/``."""
    for path in sorted(DOCS.rglob("*")):
        rel = path.relative_to(DOCS)
        if path.is_dir() or path.suffix == ".py" or "__pycache__" in rel.parts:
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".md":
            text = expand_markers(path.read_text(encoding="utf-8"), str(rel))
            (src / rel).write_text(text, encoding="utf-8")
        else:
            shutil.copy2(path, src / rel)


def nav(family_paths: Sequence[str]) -> list[Any]:
    """The site navigation."""
    families = [{FAMILIES_BY_SLUG[Path(p).stem]: p} for p in family_paths]
    pages: list[Any] = [{t: f} for t, f in HAND_WRITTEN[:2]]
    pages.append({"Puzzle families": [{"All ids": "ids.md"}, *families]})
    pages += [{t: f} for t, f in HAND_WRITTEN[2:]]
    pages += [{"Benchmarks": "benchmarks.md"}, {"Shortcut audit": "audit.md"}]
    pages.append({"Gallery": "gallery.md"})
    return pages


FAMILIES_BY_SLUG = {slug(name): name for name in FAMILIES}


def write_config(out: Path, site_dir: Path, pages: list[Any]) -> Path:
    """``OUT/mkdocs.yml``: the repository's config, this build's folders and the nav."""
    parent = os.path.relpath(ROOT / "mkdocs.yml", out)
    config = {
        "INHERIT": parent,
        "docs_dir": "src",
        "site_dir": os.path.relpath(site_dir, out),
        "nav": pages,
    }
    path = out / "mkdocs.yml"
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")  # JSON is YAML
    return path


def generate(out: Path, site_dir: Path | None = None) -> Path:
    """Write the sources into ``out/src`` and the config to ``out/mkdocs.yml``; returns it."""
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    (src / "families").mkdir(parents=True)
    copy_hand_written(src)
    every = entries(hinted=True)
    family_paths = family_pages(src, every)
    (src / "ids.md").write_text(ids_page(every), encoding="utf-8")
    (src / "benchmarks.md").write_text(benchmarks_page(), encoding="utf-8")
    (src / "audit.md").write_text(audit_page(), encoding="utf-8")
    (src / "gallery.md").write_text(gallery_page(src), encoding="utf-8")
    missing = set(registered_ids()) - set((src / "ids.md").read_text().split("`"))
    if missing:
        raise RuntimeError(f"ids missing from the ids page: {sorted(missing)}")
    return write_config(out, site_dir or out / "site", nav(family_paths))


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the docs sources."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "build" / "docs"), help="output folder")
    parser.add_argument("--site-dir", default=None, help="where mkdocs writes the site")
    args = parser.parse_args(argv)
    site = Path(args.site_dir).resolve() if args.site_dir else None
    config = generate(Path(args.out).resolve(), site)
    print(f"docs sources in {config.parent / 'src'}; build with: mkdocs build --strict -f {config}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
