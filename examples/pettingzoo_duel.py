"""A PettingZoo duel: an oracle against a random player on the same puzzles.

Each player's reward is its own score minus the mean of the others' scores, so the
oracle earns about ``1 - chance`` per episode and the random player the opposite.

    python examples/pettingzoo_duel.py --env-id SSL/Rotation-4way-v1 --episodes 20
"""

from __future__ import annotations

import argparse

import numpy as np

from ssl_gym.adapters.pettingzoo import duel_env


def main() -> None:
    """Play the duel and print the rewards."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="SSL/Rotation-4way-v1")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env = duel_env(args.env_id, n_agents=2, size=64, answer_format="plain")
    rng = np.random.default_rng(args.seed)
    totals = {agent: 0.0 for agent in env.possible_agents}
    _, infos = env.reset(seed=args.seed)
    for episode in range(args.episodes):
        while env.agents:
            info = infos["player_0"]
            choices = info["choices"]
            guess = rng.choice(choices) if choices else env.action_space("player_1").sample()
            actions = {"player_0": info["answer"], "player_1": str(guess)}
            _, rewards, _, _, infos = env.step(actions)
        print(f"episode {episode:3d}  " + "  ".join(f"{a} {r:+.2f}" for a, r in rewards.items()))
        for agent, reward in rewards.items():
            totals[agent] += reward
        _, infos = env.reset()
    means = "  ".join(f"{a} {t / args.episodes:+.3f}" for a, t in totals.items())
    print(f"mean reward  {means}")


if __name__ == "__main__":
    main()
