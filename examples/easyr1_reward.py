r"""Export puzzles for EasyR1 and score a batch with its reward-function API (CPU).

    python examples/easyr1_reward.py --id SSL/Jigsaw-2x2-v2 --n 8 --out /tmp/ssl_easyr1

Writes ``OUT/train.parquet`` and ``OUT/test.parquet`` in EasyR1's layout (``problem``,
``answer`` = the scorer's payload, ``images``) and calls
``ssl_gym.adapters.easyr1.compute_score`` with the inputs EasyR1's batch reward manager
builds (``response``, ``response_length``, ``ground_truth``). Train with EasyR1::

    python -m verl.trainer.main config=examples/config.yaml \
        data.train_files=OUT/train.parquet data.val_files=OUT/test.parquet \
        data.prompt_key=problem data.answer_key=answer data.format_prompt=null \
        worker.reward.reward_type=batch \
        worker.reward.reward_function=<path of ssl_gym/adapters/easyr1.py>:compute_score
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq

from ssl_gym.adapters.easyr1 import compute_score
from ssl_gym.adapters.export import export
from ssl_gym.core import format_answer


def main() -> None:
    """Export, read back, score a batch."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--id", default="SSL/Jigsaw-2x2-v2")
    parser.add_argument("--n", type=int, default=64, help="train rows (test: n // 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    out = export(args.id, args.out, n=args.n, n_test=max(1, args.n // 4), seed=args.seed,
                 format="easyr1", overwrite=True, progress=False)  # fmt: skip
    rows = pq.read_table(out / "test.parquet").to_pylist()
    print(f"{len(rows)} test rows; problem: {rows[0]['problem'][:60]!r} ...")

    env = gym.make(args.id).unwrapped
    rng = np.random.default_rng(args.seed)
    oracle, rand = [], []
    for row in rows:
        env.reset(seed=json.loads(row["answer"])["seed"])  # the row's instance
        oracle.append(env.puzzle.oracle(env.instance))
        guess = env.puzzle.random_answer(env.instance, rng)
        rand.append(format_answer(guess, env.puzzle.config.answer_format))
    for name, texts in (("oracle", oracle), ("random", rand)):
        inputs = [
            {"response": t, "response_length": len(t), "ground_truth": row["answer"]}
            for t, row in zip(texts, rows, strict=True)
        ]
        scores = compute_score(inputs)
        mean = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
        print(f"{name} reward {mean['overall']:.3f} (format {mean['format']:.3f}, "
              f"accuracy {mean['accuracy']:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
