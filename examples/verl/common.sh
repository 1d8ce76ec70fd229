# shellcheck shell=bash
# Shared settings of the GRPO launch scripts in this folder (sourced, not run).
#
# Every Hydra override that the scripts pass to `python -m verl.trainer.main_ppo` is
# listed here, one per line, in bash arrays; a script picks the arrays of its setting
# and calls `launch`. tests/test_verl_configs.py composes verl's ppo_trainer config
# with exactly these overrides (through SSL_GYM_VERL_PRINT=1, below), so a misspelt
# key fails the test. Only data.ssl_gym.* carry a leading `+`: that block is ours and
# is not in verl's config; every other key is defined by verl 0.9.1.

# --- Paths and knobs, from the environment ---------------------------------------
# A local checkpoint of Qwen2.5-VL-3B-Instruct; nothing is downloaded.
MODEL_PATH="${MODEL_PATH:-$HOME/models/Qwen2.5-VL-3B-Instruct}"
# GPUs per node (SSL4RL: one node of 8).
N_GPUS_PER_NODE="${N_GPUS_PER_NODE:-8}"
# Puzzles per epoch of PuzzleDataset's train split (100 steps of 512 prompts), epochs.
SSL_GYM_TRAIN_SIZE="${SSL_GYM_TRAIN_SIZE:-51200}"
TOTAL_EPOCHS="${TOTAL_EPOCHS:-1}"
# Validate every TEST_FREQ steps (and before training) on the held-out puzzles.
TEST_FREQ="${TEST_FREQ:-10}"
# Seed of the puzzle draws.
SEED="${SEED:-0}"
# verl's loggers, e.g. '["console","wandb"]'.
LOGGER="${LOGGER:-[console]}"
# Checkpoint every SAVE_FREQ steps, under CKPT_ROOT/<experiment>.
SAVE_FREQ="${SAVE_FREQ:-50}"
CKPT_ROOT="${CKPT_ROOT:-checkpoints/ssl_gym}"

# --- Tasks ---------------------------------------------------------------------------
# SSL4RL's four tasks (ssl_gym.envs.mixture.MIXTURES["SSL4RL"]), one row a puzzle, with
# SSL4RL's prompts and <answer> tags.
SSL4RL_IDS="[SSL/Rotation-4way-v1,SSL/Position-2x2-v2,SSL/Jigsaw-2x2-v2,SSL/Contrastive-Weak-v2]"
# The same tasks played with hints: a wrong answer earns a hint and another turn.
HINTED_IDS="[SSL/Rotation-4way-Hint-v2,SSL/Position-2x2-Hint-v3,SSL/Jigsaw-2x2-Hint-v2,SSL/Contrastive-Weak-Hint-v3]"
# SSL4RL's puzzle settings (its mixture's), for every id.
SSL4RL_PUZZLE_SETTINGS="{answer_format:tags,prompt_style:ssl4rl}"

# --- Overrides of every run: SSL4RL's GRPO recipe ------------------------------------
COMMON=(
    # GRPO: group-normalised advantages, no critic, no KL in the reward.
    algorithm.adv_estimator=grpo
    algorithm.use_kl_in_reward=False

    # Data: puzzles generated online by ssl_gym's PuzzleDataset (imported by package, so
    # every Ray worker imports it, which also registers the ssl_gym_puzzle agent loop);
    # the "files" name its splits (validation: held-out puzzles, 100 per id).
    data.custom_cls.path=pkg://ssl_gym.adapters.verl_online
    data.custom_cls.name=PuzzleDataset
    data.train_files=ssl_gym:train
    data.val_files=ssl_gym:validation
    "+data.ssl_gym.train_size=${SSL_GYM_TRAIN_SIZE}"
    "+data.ssl_gym.seed=${SEED}"
    "+data.ssl_gym.overrides=${SSL4RL_PUZZLE_SETTINGS}"
    data.image_key=images
    # 512 prompts a step; prompts hold the images (64 tokens per 224 px image).
    data.train_batch_size=512
    data.max_prompt_length=1024
    data.max_response_length=2048
    # Without torchvision verl's length filter drops every multimodal row: keep it off.
    data.filter_overlong_prompts=False
    data.truncation=error

    # Policy: Qwen2.5-VL-3B from a local path, FSDP.
    "actor_rollout_ref.model.path=${MODEL_PATH}"
    actor_rollout_ref.model.use_remove_padding=True
    actor_rollout_ref.model.enable_gradient_checkpointing=True

    # Actor update: lr 1e-6, mini-batches of 128 prompts, low-variance KL loss 0.01.
    actor_rollout_ref.actor.optim.lr=1e-6
    actor_rollout_ref.actor.ppo_mini_batch_size=128
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8
    actor_rollout_ref.actor.use_kl_loss=True
    actor_rollout_ref.actor.kl_loss_coef=0.01
    actor_rollout_ref.actor.kl_loss_type=low_var_kl
    actor_rollout_ref.actor.entropy_coeff=0
    actor_rollout_ref.actor.fsdp_config.param_offload=False
    actor_rollout_ref.actor.fsdp_config.optimizer_offload=False

    # Reference policy for the KL loss, offloaded between uses.
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=16
    actor_rollout_ref.ref.fsdp_config.param_offload=True

    # Rollout: vLLM (async server mode, which agent loops need), 5 samples a prompt at
    # temperature 1.0; a 3B model fits one GPU.
    actor_rollout_ref.rollout.name=vllm
    actor_rollout_ref.rollout.mode=async
    actor_rollout_ref.rollout.n=5
    actor_rollout_ref.rollout.temperature=1.0
    actor_rollout_ref.rollout.tensor_model_parallel_size=1
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16

    # Reward: ssl_gym's scorer under the non-legacy key reward.custom_reward_function
    # (verl 0.9.1 reward/reward.yaml; top-level custom_reward_function is the legacy one).
    # verl calls it for rows whose agent loop left no score: every single-turn row; the
    # hinted loop scores its episodes itself (the env's return).
    reward.custom_reward_function.path=pkg://ssl_gym.adapters.verl
    reward.custom_reward_function.name=compute_score

    # Trainer: validation on held-out puzzles before training and every TEST_FREQ steps.
    trainer.critic_warmup=0
    trainer.val_before_train=True
    "trainer.test_freq=${TEST_FREQ}"
    "trainer.logger=${LOGGER}"
    trainer.project_name=ssl_gym
    "trainer.n_gpus_per_node=${N_GPUS_PER_NODE}"
    "trainer.save_freq=${SAVE_FREQ}"
    "trainer.total_epochs=${TOTAL_EPOCHS}"
)

# --- Single turn: SSL4RL's tasks, one answer per puzzle -------------------------------
SINGLE_TURN=(
    "+data.ssl_gym.ids=${SSL4RL_IDS}"
    # Rows carry no agent_name: verl's own single-turn loop, scored by compute_score.
    +data.ssl_gym.agent_name=null
    actor_rollout_ref.rollout.agent.default_agent_loop=single_turn_agent
    trainer.experiment_name=qwen2_5_vl_3b_ssl4rl
    "trainer.default_local_dir=${CKPT_ROOT}/qwen2_5_vl_3b_ssl4rl"
)

# --- Hinted: the -Hint ids played to the end by ssl_gym's agent loop ---------------
HINTED=(
    "+data.ssl_gym.ids=${HINTED_IDS}"
    # Each row names ssl_gym's loop (agent_name, PuzzleDataset's default); the default
    # loop (rollout/rollout.yaml: agent) is set to it too, for rows without the column.
    +data.ssl_gym.agent_name=ssl_gym_puzzle
    actor_rollout_ref.rollout.agent.default_agent_loop=ssl_gym_puzzle
    actor_rollout_ref.rollout.multi_turn.enable=True
    trainer.experiment_name=qwen2_5_vl_3b_ssl4rl_hinted
    "trainer.default_local_dir=${CKPT_ROOT}/qwen2_5_vl_3b_ssl4rl_hinted"
)

# --- Launch ----------------------------------------------------------------------------
# launch OVERRIDE...: run verl's GRPO trainer with these overrides (extra arguments of
# the calling script come last and win). With SSL_GYM_VERL_PRINT=1 print them, one per
# line, instead (what the test reads).
launch() {
    if [[ "${SSL_GYM_VERL_PRINT:-0}" == 1 ]]; then
        printf '%s\n' "$@"
        return 0
    fi
    exec python3 -m verl.trainer.main_ppo "$@"
}
