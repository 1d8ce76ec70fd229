#!/usr/bin/env bash
# GRPO on one node of N_GPUS_PER_NODE (default 8) GPUs, single turn: SSL4RL's four tasks (PuzzleDataset, one answer a puzzle).
# Usage: MODEL_PATH=/models/Qwen2.5-VL-3B-Instruct bash grpo_ssl4rl_1node.sh [extra overrides...]
# Settings shared by all scripts: common.sh; see README.md.
set -euo pipefail

# Shared overrides and the launch function.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# One node: verl starts its own local Ray instance.
ONE_NODE=(
    trainer.nnodes=1
)

launch "${COMMON[@]}" "${SINGLE_TURN[@]}" "${ONE_NODE[@]}" "$@"
