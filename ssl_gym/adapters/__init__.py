"""Adapters to other ecosystems; each submodule needs its own optional extra.

Nothing is imported here, so ``import ssl_gym`` never needs these libraries:

- ``ssl_gym.adapters.datasets``: puzzles as a Hugging Face ``datasets.Dataset``;
- ``ssl_gym.adapters.export``: ``ssl-gym export`` (hf, parquet, jsonl, verl, easyr1);
- ``ssl_gym.adapters.verl``: verl's parquet layout and ``compute_score``;
- ``ssl_gym.adapters.verl_online``: verl's ``data.custom_cls`` generating puzzles online
  (``PuzzleDataset``) and the agent loop that plays ``-Hint`` ids (``PuzzleAgentLoop``);
- ``ssl_gym.adapters.easyr1``: EasyR1's layout and batch reward function;
- ``ssl_gym.adapters.trl``: reward functions for TRL's ``GRPOTrainer``;
- ``ssl_gym.adapters.trl_env``: ``-Hint`` ids played multi-turn by ``GRPOTrainer``
  (``rollout_func=HintRollout()``);
- ``ssl_gym.adapters.verifiers``, ``ssl_gym.adapters.pettingzoo``: see their modules.
"""
