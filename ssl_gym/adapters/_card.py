"""The dataset card (``README.md``) every export writes beside its data.

A Hugging Face dataset card: YAML front matter (licence, tags, the data files per split,
so the Hub's viewer finds them), then what the rows are, how they were made (ids,
settings, seeds, version, the command that rebuilds them), how they are scored, and the
two papers to cite. Deterministic: no dates, no paths but the image source's spec.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

import ssl_gym
from ssl_gym.adapters._records import is_mixture, mixture_settings
from ssl_gym.render import png_encoder

if TYPE_CHECKING:
    from ssl_gym.adapters.export import ExportArgs

CITATIONS = """\
@misc{ssl4rl,
  title = {Revisiting Self-supervised Learning as Intrinsic Reward for Visual-Language
           Reasoning (SSL4RL)},
  eprint = {2510.16416}, archivePrefix = {arXiv}
}
@misc{sslr1,
  title = {Self-Supervised Visual Reinforcement Post-Training for Multimodal Large
           Language Models (SSL-R1)},
  eprint = {2604.20705}, archivePrefix = {arXiv}
}"""

_LAYOUTS = {
    "hf": "a `datasets.DatasetDict` saved with `save_to_disk`: `datasets.load_from_disk(DIR)`",
    "parquet": "parquet: `datasets.load_dataset('parquet', data_dir=DIR)`",
    "jsonl": "JSON lines, images as PNG data URLs",
    "verl": "verl's RLHF parquet (`data.train_files=DIR/train.parquet`), scored by "
    "`ssl_gym.adapters.verl.compute_score`",
    "easyr1": "EasyR1's parquet (`data.train_files=DIR/train.parquet`), scored by "
    "`ssl_gym.adapters.easyr1.compute_score`",
}


def _command(args: ExportArgs) -> str:
    words = ["ssl-gym", "export", args.id, "--n", str(args.n), "--n-test", str(args.n_test)]
    words += ["--seed", str(args.seed), "--format", args.format]
    words += ["--image-source", args.image_source, "--png-level", str(args.png_level)]
    if args.test_fraction != 0.1:
        words += ["--test-fraction", str(args.test_fraction)]
    for key, value in sorted(args.overrides.items()):
        words += ["--set", f"{key}={json.dumps(value)}"]
    return shlex.join([*words, "--out", "DIR"])


def _files_yaml(args: ExportArgs) -> list[str]:
    if args.format == "hf":
        return []
    ext = "jsonl" if args.format == "jsonl" else "parquet"
    lines = ["configs:", "- config_name: default", "  data_files:"]
    for split in ("train", "test"):
        if args.counts[split]:
            lines += [f"  - split: {split}", f"    path: {split}*.{ext}"]
    return lines


def dataset_card(args: ExportArgs, files: list[str]) -> str:
    """The card's Markdown text."""
    if is_mixture(args.id):
        tasks, _ = mixture_settings(args.id, args.overrides)
        what = (
            f"a mixture of {len(tasks)} puzzle ids ({', '.join(f'`{t}`' for t in tasks)}): "
            "each row is the puzzle one reset of the mixture drew, under its own id "
            "(`data_source`), so scorers dispatch by row"
        )
    else:
        what = f"puzzles of `{args.id}`"
    procedural = args.image_source == "procedural"
    licence = (
        "The pictures are drawn by ssl_gym's procedural source: the data is Apache-2.0, "
        "like ssl_gym."
        if procedural
        else f"The pictures come from `{args.image_source}`: its images' licence applies "
        "to the data."
    )
    shard = ""
    if args.sharded:
        k = args.shard[1]
        shard = (
            f"\nThis folder holds shard files of {k}: each writes its contiguous part of every "
            "split (`train-0000I-of-0000N`); the shards' rows in order are the whole export's.\n"
        )
    settings: dict[str, Any] = {
        "id": args.id,
        "rows": args.counts,
        "seed": args.seed,
        "image_source": args.image_source,
        "test_fraction": args.test_fraction,
        "overrides": args.overrides,
        "png_level": args.png_level,
        "png_encoder": png_encoder(args.png_level),
        "ssl_gym_version": ssl_gym.__version__,
    }
    lines = [
        "---",
        "license: apache-2.0" if procedural else "license: other",
        "task_categories:",
        "- image-text-to-text",
        "tags:",
        "- ssl_gym",
        "- self-supervised",
        "- reinforcement-learning",
        "- verifiable-rewards",
        *_files_yaml(args),
        "---",
        "",
        f"# {args.id}: {args.n} train and {args.n_test} test puzzles",
        "",
        f"Made by ssl_gym {ssl_gym.__version__}: {what}. "
        "Every answer is known by construction: no labels were used.",
        "",
        f"Layout: {_LAYOUTS[args.format]}. Each row holds the images (PNG), the prompt, "
        "the answer and the scorer's payload (JSON: id, settings, answer, solution, "
        "choices), so a completion's reward equals the env's reward for it.",
        shard,
        "## How it was made",
        "",
        "```",
        _command(args),
        "```",
        "",
        "```json",
        json.dumps(settings, indent=2),
        "```",
        "",
        "Row `i` of a split is the env reset with `ssl_gym.seeds.record_seed(seed, split, i)`"
        ": distinct for every (seed, split, index), so train and test (and exports with "
        "other seeds) never share a puzzle; with a folder or dataset source they never "
        "share a source image either. The command above rebuilds the same bytes.",
        "",
        "## Licence",
        "",
        licence,
        "",
        "## Citation",
        "",
        "The puzzle families follow these two papers; please cite them with ssl_gym:",
        "",
        "```bibtex",
        CITATIONS,
        "```",
        "",
    ]
    return "\n".join(lines)
