"""A PettingZoo describer-solver game with two scripted agents.

The describer sees the upright picture and sends the mean brightness of its four
quadrants; the solver turns its rotated picture back by each candidate angle and
answers the angle whose quadrants match the message best. With the message the team
solves every Rotation puzzle; with an empty message the solver can only guess.

    python examples/pettingzoo_describer_solver.py --episodes 20
"""

from __future__ import annotations

import argparse

import numpy as np

from ssl_gym.adapters.pettingzoo import MESSAGE_INTRO, describer_solver_env


def quadrant_means(image: np.ndarray) -> np.ndarray:
    """Mean brightness of the top-left, top-right, bottom-left, bottom-right quarters."""
    gray = image.astype(float).mean(axis=2)
    h, w = gray.shape[0] // 2, gray.shape[1] // 2
    return np.array(
        [gray[:h, :w].mean(), gray[:h, w:].mean(), gray[h:, :w].mean(), gray[h:, w:].mean()]
    )


def describe(image: np.ndarray) -> str:
    """The describer's message: four numbers."""
    return "quadrants " + " ".join(f"{v:.0f}" for v in quadrant_means(image))


def solve(image: np.ndarray, prompt: str, choices: list[str], rng: np.random.Generator) -> str:
    """The angle (counter-clockwise) that turns ``image`` back to the described picture."""
    line = prompt.split("\n", 1)[0].removeprefix(MESSAGE_INTRO)
    if not line.startswith("quadrants "):
        return str(rng.choice(choices))
    target = np.array([float(v) for v in line.split()[1:5]])
    errors = [
        np.abs(quadrant_means(np.rot90(image, -int(c) // 90)) - target).sum() for c in choices
    ]
    return choices[int(np.argmin(errors))]


def play(episodes: int, seed: int, talk: bool) -> float:
    """Mean team reward over ``episodes``."""
    env = describer_solver_env(
        "SSL/Rotation-4way-v1", max_message_chars=40, size=64, answer_format="plain"
    )
    rng = np.random.default_rng(seed)
    total = 0.0
    env.reset(seed=seed)
    for _ in range(episodes):
        for agent in env.agent_iter():
            obs, reward, terminated, truncated, info = env.last()
            if terminated or truncated:
                total += reward / 2  # both agents get the solver's score
                env.step(None)
            elif agent == "describer_0":
                env.step(describe(obs["images"][0]) if talk else "")
            else:
                env.step(solve(obs["images"][0], obs["prompt"], list(info["choices"]), rng))
        env.reset()
    return total / episodes


def main() -> None:
    """Play with and without the message."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"team reward with the message:    {play(args.episodes, args.seed, talk=True):.3f}")
    print(f"team reward without the message: {play(args.episodes, args.seed, talk=False):.3f}")


if __name__ == "__main__":
    main()
