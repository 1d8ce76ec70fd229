"""GRPO with TRL on ssl_gym puzzles: our dataset, our reward, TRL's trainer (CPU, ~30 s).

    python examples/trl_grpo.py --steps 2 --out /tmp/ssl_trl

Builds the tiny offline Idefics3 model (``agents.tiny``; swap in any VLM checkpoint
path with ``--model``), a dataset with ``ssl_gym.adapters.datasets.to_dataset`` and
the reward with ``ssl_gym.adapters.trl.reward_funcs``, then runs TRL's ``GRPOTrainer``.
Rotation with angular partial credit and plain answers gives the random tiny model some
non-zero rewards to learn from.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers import AutoProcessor
from trl import GRPOConfig, GRPOTrainer

from ssl_gym.adapters.datasets import to_dataset
from ssl_gym.adapters.trl import reward_funcs

ENV_ID = "SSL/Rotation-4way-v1"
OVERRIDES = {"answer_format": "plain", "angular_credit": True, "size": 64}


def main() -> None:
    """Train for a few steps and print TRL's logged rewards."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--n", type=int, default=8, help="dataset rows")
    parser.add_argument("--model", default=None, help="a VLM checkpoint (default: tiny)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    out = Path(args.out)
    model = args.model
    if model is None:
        from agents.tiny import build_tiny_model

        model = str(build_tiny_model(out / "tiny-model", seed=0))
    dataset = to_dataset(ENV_ID, n=args.n, seed=0, overrides=OVERRIDES)
    config = GRPOConfig(
        output_dir=str(out / "grpo"),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=8,
        max_steps=args.steps,
        logging_steps=1,
        learning_rate=1e-5,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs(ENV_ID),
        args=config,
        train_dataset=dataset,
        processing_class=AutoProcessor.from_pretrained(model, trust_remote_code=False),
    )
    trainer.train()
    for log in trainer.state.log_history:
        if "rewards/ssl_gym_reward/mean" in log:
            print(f"step {log['step']}: reward {log['rewards/ssl_gym_reward/mean']:.3f}")


if __name__ == "__main__":
    main()
