"""Agents that learn to solve `ssl_gym` puzzles: VLM loading, sampling, rollouts and GRPO."""
