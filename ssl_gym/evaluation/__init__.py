r"""``ssl-gym eval``: score a policy on held-out puzzles, resumably.

    ssl-gym eval --policy random|oracle|blind|hf:DIR|vllm:DIR|openai:URL \\
        --envs 'SSL/Jigsaw-*' --episodes 100 --seed 0 --out outputs/eval/jigsaw

## Policies

* ``random``: a uniformly random valid answer (``puzzle.random_answer``) in the id's
  answer format; its expected score is the id's chance score.
* ``oracle``: the ground truth (``puzzle.oracle``); scores 1.
* ``blind``: never sees an image (the blind adversary, ``ssl_gym.audit.blind``). On a
  single-turn id it answers one constant, the answer that scores best over
  :data:`BLIND_FIT_EPISODES` *training* puzzles: what a policy that learned the answer
  prior but not the images would get. On a ``-Hint`` id it reads every reply, learns on
  the training puzzles what the replies say about the answer, and tries the choices in
  turn: the strongest play the project knows without the pixels.
* ``hf:DIR``, ``vllm:DIR``: a local checkpoint sampled with ``agents``' HF or vLLM
  sampler (:mod:`agents.policy`: model policies live with the models, and ``ssl_gym``
  never imports ``agents``); ``openai:URL``: an OpenAI-compatible endpoint (``--model``
  names the model, the key is read from ``OPENAI_API_KEY``). ``--samples K``
  completions per puzzle give pass@k; sampling is greedy when ``K == 1`` unless
  ``--temperature`` is given (1.0 otherwise). Hinted ids (``-Hint``) are played over all
  their turns, the env's feedback and hints coming back as the next user turn.

## Held-out seeds

:func:`ssl_gym.seeds.eval_seeds` fixes the puzzles of every id: ``--seed S`` selects the block
``[(S + 1) * 2**30, (S + 2) * 2**30)``, and inside it the seeds of an id start at an offset
given by the CRC-32 of the id (the ``-Hint`` id shares the puzzles of its single-turn id).
Training seeds are drawn below ``ssl_gym.seeds.SEED_LIMIT = 2**30``, so no held-out
puzzle is ever trained on; the trainer's own held-out evaluation uses the same function.
Episode ``i`` is the same puzzle whatever ``--episodes`` is, so "Jigsaw-3x3, 100 episodes"
means the same set everywhere.

## Metrics (per id, family, difficulty and overall, pooled over episodes)

``mean_reward``, ``mean_score`` (puzzle score, partial credit included), ``solve_rate``
(score 1), ``format_rate`` (the final answer well formed and readable), ``chance``,
``normalised_score`` = (score - chance) / (1 - chance) (0 = chance, 1 = solved; on a
``-Hint`` id the episode reward against the blind-optimal reward, the chance less the
margin of :mod:`ssl_gym.multiturn`),
``pass@k`` (unbiased estimator of Chen et al. 2021, from K samples), ``mean_turns``.

## Output and resuming

``DIR/run.json`` (the settings), ``DIR/episodes.jsonl`` (one line per finished puzzle,
appended as they finish), and at the end ``DIR/summary.json``, ``DIR/summary.md``,
``DIR/score_by_family.png`` and ``DIR/score_by_difficulty.png`` (each written to a
temporary file and renamed). Rerun the same command after a crash: the puzzles already
in ``episodes.jsonl`` are not played again (a torn last line is dropped). A rerun with a
different policy, seed, id list or sampling settings is refused; a larger ``--episodes``
extends the run.

## Layout

:mod:`~ssl_gym.evaluation.policies` (the policy protocol and the policies that need no
model), :mod:`~ssl_gym.evaluation.run` (held-out runs, their episode log, resuming),
:mod:`~ssl_gym.evaluation.report` (metrics, pass@k, tables, plots) and
:mod:`~ssl_gym.evaluation.cli` (``ssl-gym eval``'s parser and main).
"""

from ssl_gym.evaluation.policies import (
    BLIND_FIT_EPISODES,
    AnswerPolicy,
    BlindPolicy,
    Outcome,
    Policy,
    make_policy,
)
from ssl_gym.evaluation.report import (
    markdown,
    metrics,
    pass_at_k,
    pass_ks,
    summarize,
    write_summary,
)
from ssl_gym.evaluation.run import check_run, id_chance, load_episodes, match_ids, run_eval
from ssl_gym.seeds import eval_seeds

__all__ = [
    "BLIND_FIT_EPISODES",
    "AnswerPolicy",
    "BlindPolicy",
    "Outcome",
    "Policy",
    "check_run",
    "eval_seeds",
    "id_chance",
    "load_episodes",
    "make_policy",
    "markdown",
    "match_ids",
    "metrics",
    "pass_at_k",
    "pass_ks",
    "run_eval",
    "summarize",
    "write_summary",
]
