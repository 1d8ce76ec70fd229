r"""Export puzzles for verl and score completions with verl's custom reward function (CPU).

    python examples/verl_export.py --id SSL/Rotation-4way-v1 --n 8 --out /tmp/ssl_verl

Writes ``OUT/train.parquet`` and ``OUT/test.parquet`` in verl's RLHF layout, reads the
test rows back as verl would, and calls ``ssl_gym.adapters.verl.compute_score`` the way
verl's reward manager does, on the oracle's and a random policy's completions. Train
with verl::

    python -m verl.trainer.main_ppo data.train_files=OUT/train.parquet \
        data.val_files=OUT/test.parquet data.image_key=images \
        custom_reward_function.path=<path of ssl_gym/adapters/verl.py> \
        custom_reward_function.name=compute_score
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq

import ssl_gym.adapters.verl as verl_adapter
from ssl_gym.adapters.export import export
from ssl_gym.core import format_answer


def main() -> None:
    """Export, read back, score."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--id", default="SSL/Rotation-4way-v1")
    parser.add_argument("--n", type=int, default=64, help="train rows (test: n // 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    out = export(args.id, args.out, n=args.n, n_test=max(1, args.n // 4), seed=args.seed,
                 format="verl", overwrite=True, progress=False)  # fmt: skip
    rows = pq.read_table(out / "test.parquet").to_pylist()
    print(f"{len(rows)} test rows; columns: {list(rows[0])}")
    print("prompt:", rows[0]["prompt"][0]["content"][:90].replace("\n", " "), "...")
    print("custom_reward_function.path =", verl_adapter.__file__)

    env = gym.make(args.id).unwrapped
    fmt = env.puzzle.config.answer_format
    rng = np.random.default_rng(args.seed)
    oracle, rand = [], []
    for row in rows:
        truth = row["reward_model"]["ground_truth"]
        env.reset(seed=json.loads(row["extra_info"]["ssl_gym"])["seed"])
        guess = format_answer(env.puzzle.random_answer(env.instance, rng), fmt)
        for text, scores in ((format_answer(truth, fmt), oracle), (guess, rand)):
            scores.append(
                verl_adapter.compute_score(row["data_source"], text, truth, row["extra_info"])
            )
    print(f"oracle reward {np.mean(oracle):.3f}")
    print(f"random reward {np.mean(rand):.3f} (chance {env.puzzle.chance_score:.3f})")


if __name__ == "__main__":
    main()
