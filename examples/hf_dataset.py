"""Puzzles as a Hugging Face dataset: build, save, reload, score (CPU, seconds).

    python examples/hf_dataset.py --id SSL/Jigsaw-2x2-v2 --n 8 --out /tmp/ssl_hf

Builds a train/test ``DatasetDict`` with ``ssl_gym.adapters.datasets``, saves it with
``save_to_disk``, reloads it, and scores the oracle's and a random policy's completions
with the TRL reward function (the env's reward, from each row's ``info``).
"""

from __future__ import annotations

import argparse
import json

import datasets
import gymnasium as gym
import numpy as np

from ssl_gym.adapters.datasets import to_dataset_dict
from ssl_gym.adapters.trl import reward_funcs
from ssl_gym.core import format_answer


def main() -> None:
    """Build, save, reload and score a small dataset."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--id", default="SSL/Jigsaw-2x2-v2")
    parser.add_argument("--n", type=int, default=64, help="train rows (test: n // 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    dd = to_dataset_dict(args.id, n=args.n, n_test=max(1, args.n // 4), seed=args.seed)
    dd.save_to_disk(args.out)
    dd = datasets.load_from_disk(args.out)
    print(dd)
    test = dd["test"]
    row = test[0]
    print("prompt:", row["prompt"][0]["content"][:100].replace("\n", " "), "...")
    print("images:", [im.size for im in row["images"]], "answer:", row["answer"])

    [reward] = reward_funcs(args.id)
    env = gym.make(args.id).unwrapped
    fmt = env.puzzle.config.answer_format
    oracle = [format_answer(a, fmt) for a in test["answer"]]
    rng = np.random.default_rng(args.seed)
    guesses = []
    for info in test["info"]:
        env.reset(seed=json.loads(info)["seed"])  # the row's instance, rebuilt by the env
        guesses.append(format_answer(env.puzzle.random_answer(env.instance, rng), fmt))
    print(f"oracle reward {np.mean(reward(test['prompt'], oracle, info=test['info'])):.3f}")
    print(f"random reward {np.mean(reward(test['prompt'], guesses, info=test['info'])):.3f}")


if __name__ == "__main__":
    main()
