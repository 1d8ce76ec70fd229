"""Multi-turn GRPO with TRL on a -Hint id: the env's hints come back between answers (CPU).

    python examples/trl_hinted.py --steps 2 --out /tmp/ssl_trl_hinted

Builds the tiny offline Idefics3 model (``agents.tiny``; swap in any VLM checkpoint path
with ``--model``), rows with ``ssl_gym.adapters.trl_env.to_hint_dataset`` and runs TRL's
``GRPOTrainer`` with ``rollout_func=HintRollout(...)``: each completion is an episode of
``SSL/Rotation-4way-Hint-v2`` (answer, the env's reply and hint, answer again, ...), and
its reward is the episode's (hint costs included). Prints TRL's logged reward and turns per
step, then one episode's messages. Later turns pass the env's text reply only (TRL 1.16's
rollout path cannot show the hint's marked images; see the module notes).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from transformers import AutoProcessor
from trl import GRPOConfig, GRPOTrainer

from ssl_gym.adapters.trl_env import Episode, HintRollout, episode_reward, to_hint_dataset

ENV_ID = "SSL/Rotation-4way-Hint-v2"
OVERRIDES = {"answer_format": "plain", "size": 64}


def main() -> None:
    """Train for a few steps; print TRL's logged rewards and one episode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--n", type=int, default=8, help="dataset rows")
    parser.add_argument("--model", default=None, help="a VLM checkpoint (default: tiny)")
    parser.add_argument("--turn-tokens", type=int, default=8, help="tokens per answer")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    out = Path(args.out)
    model = args.model
    if model is None:
        from agents.tiny import build_tiny_model

        model = str(build_tiny_model(out / "tiny-model", seed=0))
    episodes: list[Episode] = []

    def ssl_gym_reward(prompts: Any, completions: list[Any], **kwargs: Any) -> list[float]:
        episodes[:] = kwargs["ssl_gym_episode"]
        return episode_reward(prompts, completions, **kwargs)

    config = GRPOConfig(
        output_dir=str(out / "grpo"),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=512,
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
        reward_funcs=[ssl_gym_reward],
        args=config,
        train_dataset=to_hint_dataset(ENV_ID, n=args.n, seed=0, overrides=OVERRIDES),
        processing_class=AutoProcessor.from_pretrained(model, trust_remote_code=False),
        rollout_func=HintRollout(max_turn_tokens=args.turn_tokens),
    )
    trainer.train()
    for log in trainer.state.log_history:
        if "rewards/ssl_gym_reward/mean" in log:
            reward, turns = log["rewards/ssl_gym_reward/mean"], log["ssl_gym/turns"]
            print(f"step {log['step']}: reward {reward:.3f}, turns {turns:.2f}")
    ep = max(episodes, key=lambda e: e.turns)
    print(f"episode {ep.env_id} seed {ep.seed}: step rewards {ep.rewards}, reward {ep.reward}")
    for message in ep.messages():
        print(f"  {message['role']}: {message['content']!r}")


if __name__ == "__main__":
    main()
