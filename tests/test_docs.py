"""The documentation site: generated from the code, built with ``mkdocs --strict``, examples run."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ssl_gym.envs import entries, registered_ids
from ssl_gym.puzzles import FAMILIES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```\s*$", re.S | re.M)
PAGES_WITH_CODE = sorted(
    p.name for p in DOCS.glob("*.md") if PYTHON_BLOCK.search(p.read_text(encoding="utf-8"))
)


def _gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", DOCS / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean generation and ``mkdocs build --strict`` in a temporary folder."""
    out = tmp_path_factory.mktemp("docs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    for cmd in (
        [sys.executable, str(DOCS / "gen_docs.py"), "--out", str(out)],
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(out / "mkdocs.yml")],
    ):
        run = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"{cmd} failed:\n{run.stdout}\n{run.stderr}"
    return out


def _site_text(site: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (site / "site").rglob("*.html"))


def test_every_registered_id_is_in_the_site(site: Path) -> None:
    text = _site_text(site)
    ids = set(registered_ids()) | {e.id for e in entries(hinted=True)}
    assert len(ids) > 80
    missing = sorted(i for i in ids if i not in text)
    assert not missing, f"ids missing from the built docs: {missing}"


def test_every_family_page_shows_every_preset(site: Path) -> None:
    for name, cls in FAMILIES.items():
        page = site / "site" / "families" / f"{name.lower()}.html"
        html = page.read_text(encoding="utf-8")
        pictures = re.findall(r'<img [^>]*src="(img/[^"]+\.png)"', html)
        assert len(pictures) == len(cls.presets), f"{name}: {len(pictures)} pictures"
        for rel in pictures:
            assert (page.parent / rel).stat().st_size > 1000, rel
        for section in ("Description", "Observation", "Answer format", "Reward", "Difficulty"):
            assert re.search(rf'<h2 id="[^"]*">{section}<', html), f"{name}: no {section}"


def test_no_raw_answer_tags_in_the_site(site: Path) -> None:
    """Prompts hold ``<think>``/``<answer>``: they must reach the page escaped, as text."""
    text = _site_text(site)
    assert "&lt;answer&gt;" in text
    assert not re.search(r"<(think|answer)>", text)


def test_generated_sections_are_filled(site: Path) -> None:
    src = site / "src"
    leftover = [p.name for p in src.rglob("*.md") if "<!-- gen:" in p.read_text(encoding="utf-8")]
    assert not leftover, f"markers not expanded in {leftover}"
    training = (src / "training.md").read_text(encoding="utf-8")
    for recipe in (ROOT / "agents" / "recipes").glob("*.toml"):
        assert f"`{recipe.stem}`" in training
    assert "`--group-size`" in training and "`--sampler`" in training
    adapters = (src / "adapters.md").read_text(encoding="utf-8")
    for example in (ROOT / "examples").glob("*.py"):
        assert f"examples/{example.name}" in adapters
        assert example.read_text(encoding="utf-8").strip() in adapters
    for module in (ROOT / "ssl_gym" / "adapters").glob("[!_]*.py"):
        assert f"ssl_gym.adapters.{module.stem}" in adapters
    benchmarks = (src / "benchmarks.md").read_text(encoding="utf-8")
    audit = (src / "audit.md").read_text(encoding="utf-8")
    for result in (ROOT / "benchmarks" / "results").glob("*.json"):
        page = audit if result.stem in ("shortcut_audit", "audit") else benchmarks
        assert f"benchmarks/results/{result.name}" in page


def test_getting_started_has_the_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    commands = re.findall(r"^(make \w+)", readme.split("```bash", 1)[1].split("```")[0], re.M)
    assert commands == ["make demo", "make test"]
    for command in commands:
        assert command in index


def _make_rule(makefile: str, target: str) -> tuple[str, list[str]]:
    """A Makefile rule's prerequisites and recipe lines (continuations joined)."""
    text = makefile.replace("\\\n", " ")
    match = re.search(rf"^{re.escape(target)}:([^\n]*)\n((?:\t[^\n]*\n)*)", text, re.M)
    assert match, f"no rule for {target}"
    return match[1], [line.strip() for line in match[2].splitlines()]


def test_make_demo_installs_only_what_it_needs_and_bounds_its_training() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    prerequisites, recipe = _make_rule(makefile, "demo")
    assert prerequisites.split() == ["$(DEMO_STAMP)"]
    _, install = _make_rule(makefile, "$(DEMO_STAMP)")
    installed = " ".join(line for line in install if "pip install" in line)
    assert '-e ".[train]"' in installed and "torch==" in installed
    for heavy in ("vllm", "verl", "trl", "verifiers", "docs", "dev"):
        assert heavy not in installed, heavy
    trains = [line for line in recipe if " train " in f" {line} "]
    limits = [float(re.search(r"--max-minutes ([\d.]+)", t)[1]) for t in trains]
    # ~1 minute of install, gallery and start-up besides: training must fit the rest of 4
    assert len(limits) == len(trains) == 2 and sum(limits) <= 2.5, limits


def test_results_of_any_shape_become_tables() -> None:
    gen = _gen_docs()
    text = gen.json_tables(
        {
            "requests": 64,
            "ids": {"SSL/A-v0": {"single": 1.5, "async": 3}, "SSL/B-v0": {"single": 2.25}},
            "rows": [{"id": "x", "ok": True}],
            "deep": {"a": {"b": [1, 2]}, "c": 1},
        }
    )
    assert "| `requests` | 64 |" in text
    assert "|  | single | async |" in text and "| SSL/B-v0 | 2.25 |  |" in text
    assert "| id | ok |" in text and "| x | yes |" in text
    assert '"b": [' in text  # too deep for a table: shown as JSON


@pytest.mark.parametrize("page", PAGES_WITH_CODE)
def test_python_examples_in_the_docs_run(page: str, tmp_path: Path) -> None:
    """Every ```python block of a page, in order, as one script in a fresh interpreter."""
    blocks = PYTHON_BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))
    script = tmp_path / f"{Path(page).stem}_examples.py"
    script.write_text("\n\n".join(blocks), encoding="utf-8")
    run = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, f"{page}:\n{run.stderr[-3000:]}"


def test_the_docs_have_python_examples() -> None:
    assert {"index.md", "env-api.md"} <= set(PAGES_WITH_CODE)


def test_the_landing_page_opens_with_a_grid_of_the_nine_families(site: Path) -> None:
    from ssl_gym.puzzles import FAMILIES

    index = (site / "site" / "index.html").read_text(encoding="utf-8")
    grid = index.split('class="family-grid"', 1)[1].split("</div>", 1)[0]
    assert index.index("family-grid") < index.index('id="getting-started"')
    for family in FAMILIES:
        assert f'href="families/{family.lower()}.html"' in grid
        assert f'src="strips/{family.lower()}.png"' in grid
        assert (site / "site" / "strips" / f"{family.lower()}.png").is_file()


def test_family_pages_show_their_examples_above_their_tables(site: Path) -> None:
    page = (site / "site" / "families" / "jigsaw.html").read_text(encoding="utf-8")
    assert page.index("examples-of-every-preset") < page.index('id="registered-ids"')
    assert page.index("examples-of-every-preset") < page.index('id="config-fields"')


def test_the_gallery_is_part_of_the_site_and_links_back(site: Path) -> None:
    page = (site / "site" / "gallery.html").read_text(encoding="utf-8")
    assert 'href="gallery/index.html"' in page
    gallery = (site / "site" / "gallery" / "index.html").read_text(encoding="utf-8")
    assert '<a href="../index.html">documentation</a>' in gallery
    assert "SSL/Rotation-4way-Hint-v2" in gallery
