#!/usr/bin/env bash
# GRPO on NNODES nodes of N_GPUS_PER_NODE (default 8) GPUs of a running Ray cluster,
# single turn: SSL4RL's four tasks (PuzzleDataset, one answer a puzzle).
# Start the cluster first (ssl_gym and verl installed, MODEL_PATH present on every node):
#   head:    ray start --head --port=6379
#   workers: ray start --address=HEAD_IP:6379
# then, on the head node:
#   NNODES=4 MODEL_PATH=/models/Qwen2.5-VL-3B-Instruct bash grpo_ssl4rl_nnodes.sh [extra overrides...]
set -euo pipefail

# Shared overrides and the launch function.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Join the running cluster (ray.init() reads RAY_ADDRESS; "auto" finds the local head
# and fails if there is none, rather than starting a one-node cluster).
export RAY_ADDRESS="${RAY_ADDRESS:-auto}"

# N nodes: the node count must come from the environment.
N_NODES=(
    "trainer.nnodes=${NNODES:?set NNODES to the number of nodes in the Ray cluster}"
)

launch "${COMMON[@]}" "${SINGLE_TURN[@]}" "${N_NODES[@]}" "$@"
