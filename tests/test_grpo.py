"""GRPO math in agents.grpo against values computed by hand (numbers written out)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from torch import Tensor

torch = pytest.importorskip("torch")

from agents.grpo import (  # noqa: E402
    aggregate,
    entropy_from_logits,
    group_advantages,
    grpo_loss,
    kl_penalty,
    masked_mean,
    masked_sum,
    policy_loss,
    token_logprobs,
)


def close(actual: object, expected: object, tol: float = 1e-5) -> None:
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=torch.float64),
        torch.as_tensor(expected, dtype=torch.float64),
        atol=tol,
        rtol=0,
    )


# --- group_advantages ------------------------------------------------------------------------


def test_advantages_std_normalised() -> None:
    # mean 0.5, Bessel std sqrt((4 * 0.25) / 3) = 0.577350; 0.5 / (0.577350 + 1e-6)
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), group_size=4)
    close(adv, [0.866024, -0.866024, -0.866024, 0.866024])


def test_advantages_without_std() -> None:
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4, normalize_std=False)
    close(adv, [0.5, -0.5, -0.5, 0.5], tol=0)


def test_advantages_use_consecutive_groups() -> None:
    # groups [1, 0] and [0, 1]: mean 0.5, Bessel std sqrt(0.5) = 0.707107
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), group_size=2)
    close(adv, [0.707106, -0.707106, -0.707106, 0.707106])
    adv = group_advantages(torch.tensor([3.0, 1.0, 0.0, 0.0]), 2, normalize_std=False)
    close(adv, [1.0, -1.0, 0.0, 0.0], tol=0)


def test_identical_rewards_give_exact_zeros() -> None:
    rewards = torch.tensor([0.1, 0.1, 0.1, 0.7, 0.7, 0.7, 1.0, 0.0, 0.5])
    adv = group_advantages(rewards, group_size=3)
    assert torch.equal(adv[:6], torch.zeros(6))
    close(adv[6:], [1.0, -1.0, 0.0])  # mean 0.5, Bessel std 0.5
    assert torch.equal(group_advantages(torch.ones(4), 1), torch.zeros(4))


def test_integer_rewards_are_accepted() -> None:
    adv = group_advantages(torch.tensor([2, 0]), 2, normalize_std=False)
    close(adv, [1.0, -1.0], tol=0)


@pytest.mark.parametrize(
    ("rewards", "group_size", "match"),
    [
        (torch.zeros(5), 2, "divisor"),
        (torch.zeros(4), 0, "divisor"),
        (torch.zeros(2, 2), 2, "shape"),
        (torch.tensor([1.0, float("nan")]), 2, "finite"),
    ],
    ids=["not-dividing", "zero", "2d", "nan"],
)
def test_advantages_reject_bad_input(rewards: object, group_size: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        group_advantages(rewards, group_size)  # type: ignore[arg-type]


# --- masked reductions and aggregation -------------------------------------------------------


def test_masked_sum_and_mean_ignore_masked_values() -> None:
    x = torch.tensor([[1.0, 2.0, float("inf")], [4.0, float("nan"), 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 1]])
    close(masked_sum(x, mask), 13.0, tol=0)
    close(masked_mean(x, mask), 13.0 / 4, tol=0)
    close(masked_mean(x, mask, dim=-1), [1.5, 5.0], tol=0)
    close(masked_mean(x, torch.zeros_like(mask)), 0.0, tol=0)


def test_masked_reductions_reject_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="mask must have shape"):
        masked_sum(torch.zeros(2, 3), torch.ones(2, 2))


def test_aggregations_on_sequences_of_different_lengths() -> None:
    # sequence 0: one valid token of value -1; sequence 1: three valid tokens of value +1
    values = torch.tensor([[-1.0, 99.0, 99.0], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    close(aggregate(values, mask, "token_mean"), (-1 + 3) / 4, tol=0)  # 0.5
    close(aggregate(values, mask, "seq_mean"), (-1 + 1) / 2, tol=0)  # 0
    close(aggregate(values, mask, "seq_mean_token_sum"), (-1 + 3) / 2, tol=0)  # 1
    close(aggregate(values, mask, "seq_mean_token_sum_norm"), (-1 / 3 + 3 / 3) / 2)  # 1/3


def test_seq_mean_skips_empty_sequences() -> None:
    values = torch.tensor([[2.0, 4.0], [7.0, 7.0]])
    mask = torch.tensor([[1, 1], [0, 0]])
    close(aggregate(values, mask, "seq_mean"), 3.0, tol=0)


def test_unknown_aggregation_raises() -> None:
    with pytest.raises(ValueError, match="aggregation must be one of"):
        aggregate(torch.zeros(1, 1), torch.ones(1, 1), "mean")  # type: ignore[arg-type]


# --- policy loss -----------------------------------------------------------------------------

# One token per sequence, clip_eps = 0.2. Rows: ratio 1.1 (inside), 1.5 (above), 0.5 (below),
# each with advantage +1 and -1. Per-token loss -min(r A, clip(r, 0.8, 1.2) A):
#   r=1.1 A=+1: -min(1.1, 1.1) = -1.1        r=1.1 A=-1: -min(-1.1, -1.1) = 1.1
#   r=1.5 A=+1: -min(1.5, 1.2) = -1.2 (clip) r=1.5 A=-1: -min(-1.5, -1.2) = 1.5
#   r=0.5 A=+1: -min(0.5, 0.8) = -0.5        r=0.5 A=-1: -min(-0.5, -0.8) = 0.8 (clip)
# token mean = (-1.1 + 1.1 - 1.2 + 1.5 - 0.5 + 0.8) / 6 = 0.6 / 6 = 0.1; clip frac 2 / 6.
RATIOS = [1.1, 1.1, 1.5, 1.5, 0.5, 0.5]
ADVANTAGES = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0]


def clip_case() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    logprobs = torch.tensor([[math.log(r)] for r in RATIOS], requires_grad=True)
    old = torch.zeros(6, 1)
    return logprobs, old, torch.tensor(ADVANTAGES), torch.ones(6, 1)


def test_policy_loss_clipping_by_hand() -> None:
    logprobs, old, adv, mask = clip_case()
    loss, metrics = policy_loss(logprobs, old, adv, mask, clip_eps=0.2)
    close(loss, 0.1)
    close(metrics["loss/policy"], 0.1)
    close(metrics["policy/clip_frac"], 2 / 6)
    close(metrics["policy/clip_frac_high"], 1 / 6)
    close(metrics["policy/clip_frac_low"], 1 / 6)
    close(metrics["policy/ratio_mean"], (1.1 + 1.1 + 1.5 + 1.5 + 0.5 + 0.5) / 6)
    # d loss / d logp = -A r / 6 where unclipped (d r / d logp = r), 0 where clipped
    loss.backward()
    expected = [-1.1 / 6, 1.1 / 6, 0.0, 1.5 / 6, -0.5 / 6, 0.0]
    assert logprobs.grad is not None
    close(logprobs.grad.squeeze(-1), expected)


def test_policy_loss_clip_higher() -> None:
    # clip_eps_high = 0.6: r=1.5 with A=+1 is now inside, loss -1.5 instead of -1.2
    logprobs, old, adv, mask = clip_case()
    loss, metrics = policy_loss(logprobs, old, adv, mask, clip_eps=0.2, clip_eps_high=0.6)
    close(loss, (0.6 - 0.3) / 6)
    close(metrics["policy/clip_frac"], 1 / 6)
    close(metrics["policy/clip_frac_high"], 0.0)


def test_approx_kl_metric_by_hand() -> None:
    # ratio 2 and 0.5: r - 1 - log r = 1 - 0.693147 = 0.306853 and -0.5 + 0.693147 = 0.193147
    logprobs = torch.tensor([[math.log(2.0), math.log(0.5)]])
    _, metrics = policy_loss(logprobs, torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2))
    close(metrics["policy/approx_kl"], (0.306853 + 0.193147) / 2)


def test_gradient_at_ratio_one_is_minus_advantage_over_tokens() -> None:
    # lengths 2 and 3, N = 5 valid tokens, A = [2, -1]: grad -A / N = -0.4 and +0.2
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.7, -0.9]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    adv = torch.tensor([2.0, -1.0])
    loss, metrics = policy_loss(logprobs, logprobs.detach(), adv, mask)
    close(loss, (-2 * 2 + 1 * 3) / 5)  # -A summed over tokens / N = -0.2
    loss.backward()
    close(logprobs.grad, [[-0.4, -0.4, 0.0], [0.2, 0.2, 0.2]])
    assert metrics["policy/clip_frac"] == 0.0
    assert metrics["policy/ratio_mean"] == 1.0


def test_seq_mean_gradient_weighs_sequences_equally() -> None:
    # lengths 1 and 3, A = [1, -1]: grad -A / (n_i * 2) = -0.5 and +1/6 per token
    logprobs = torch.zeros(2, 3, requires_grad=True)
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]])
    loss, _ = policy_loss(logprobs, None, torch.tensor([1.0, -1.0]), mask, aggregation="seq_mean")
    close(loss, 0.0)
    loss.backward()
    close(logprobs.grad, [[-0.5, 0.0, 0.0], [1 / 6, 1 / 6, 1 / 6]])


def test_policy_loss_accepts_per_token_advantages() -> None:
    logprobs = torch.zeros(1, 2)
    loss, _ = policy_loss(logprobs, None, torch.tensor([[1.0, 3.0]]), torch.ones(1, 2))
    close(loss, -2.0, tol=0)


@pytest.mark.parametrize(
    ("shapes", "match"),
    [
        (((2, 3), (2, 4), (2,), (2, 3)), "old_logprobs"),
        (((2, 3), (2, 3), (3,), (2, 3)), "advantages"),
        (((2, 3), (2, 3), (2,), (2, 2)), "logprobs"),
        (((6,), (6,), (6,), (6,)), "mask"),
    ],
    ids=["old", "advantages", "mask-vs-logprobs", "1d"],
)
def test_policy_loss_rejects_shape_mismatch(
    shapes: tuple[tuple[int, ...], ...], match: str
) -> None:
    tensors = [torch.zeros(s) for s in shapes]
    with pytest.raises(ValueError, match=match):
        policy_loss(*tensors)


def test_negative_clip_raises() -> None:
    with pytest.raises(ValueError, match="clip_eps"):
        policy_loss(torch.zeros(1, 1), None, torch.zeros(1), torch.ones(1, 1), clip_eps=-0.1)


# --- KL estimators ---------------------------------------------------------------------------


def test_kl_estimators_by_hand() -> None:
    # d = logp - ref = [1, -1, 0]
    logp = torch.tensor([-1.0, -2.0, -0.3])
    ref = torch.tensor([-2.0, -1.0, -0.3])
    close(kl_penalty(logp, ref, "k1"), [1.0, -1.0, 0.0])
    close(kl_penalty(logp, ref, "k2"), [0.5, 0.5, 0.0])
    # exp(-d) + d - 1: exp(-1) = 0.367879; exp(1) - 2 = 0.718282
    close(kl_penalty(logp, ref, "k3"), [0.367879, 0.718282, 0.0])


def test_k3_is_non_negative_and_clamped() -> None:
    gen = torch.Generator().manual_seed(0)
    logp = -5 * torch.rand(1000, generator=gen)
    ref = -5 * torch.rand(1000, generator=gen)
    assert bool((kl_penalty(logp, ref, "k3") >= 0).all())
    # ref - logp = 30 is clamped to 20 and exp(20) - 21 to 10
    close(kl_penalty(torch.tensor([-30.0]), torch.tensor([0.0])), [10.0], tol=0)


def test_kl_rejects_unknown_kind_and_shapes() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        kl_penalty(torch.zeros(2), torch.zeros(2), "k4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ref_logprobs"):
        kl_penalty(torch.zeros(2), torch.zeros(3))


# --- grpo_loss -------------------------------------------------------------------------------


def test_grpo_loss_composes_terms_by_hand() -> None:
    # policy at ratio 1: -A = -0.5. k3 with ref - logp = [-1, 1]: (exp(-1) + exp(1) - 2) / 2
    # = (0.367879 + 0.718282) / 2 = 0.543081. entropy mean (1 + 2) / 2 = 1.5.
    # total = -0.5 + 0.1 * 0.543081 - 0.01 * 1.5 = -0.460692
    logprobs = torch.tensor([[-1.0, -2.0]])
    loss, metrics = grpo_loss(
        logprobs,
        logprobs.clone(),
        torch.tensor([0.5]),
        torch.ones(1, 2),
        ref_logprobs=torch.tensor([[-2.0, -1.0]]),
        kl_coef=0.1,
        entropy=torch.tensor([[1.0, 2.0]]),
        entropy_coef=0.01,
    )
    close(loss, -0.460692)
    close(metrics["loss/total"], -0.460692)
    close(metrics["loss/policy"], -0.5)
    close(metrics["loss/kl"], 0.0543081)
    close(metrics["policy/ref_kl"], 0.543081)
    close(metrics["loss/entropy"], -0.015)
    close(metrics["policy/entropy"], 1.5)
    assert all(isinstance(v, float) for v in metrics.values())


def test_grpo_loss_kl_kind_is_used() -> None:
    logprobs = torch.tensor([[-1.0, -2.0]])
    _, metrics = grpo_loss(
        logprobs,
        None,
        torch.tensor([0.0]),
        torch.ones(1, 2),
        ref_logprobs=torch.tensor([[-2.0, -1.0]]),
        kl_coef=1.0,
        kl_kind="k2",
    )
    close(metrics["policy/ref_kl"], 0.5)


def test_grpo_loss_without_extras_is_policy_loss() -> None:
    logprobs, old, adv, mask = clip_case()
    loss, metrics = grpo_loss(logprobs, old, adv, mask)
    close(loss, 0.1)
    assert "loss/kl" not in metrics
    assert "policy/entropy" not in metrics


def test_grpo_loss_requires_terms_its_coefficients_need() -> None:
    args = (torch.zeros(1, 1), None, torch.zeros(1), torch.ones(1, 1))
    with pytest.raises(ValueError, match="ref_logprobs"):
        grpo_loss(*args, kl_coef=0.1)
    with pytest.raises(ValueError, match="entropy"):
        grpo_loss(*args, entropy_coef=0.1)
    with pytest.raises(ValueError, match="kl_coef"):
        grpo_loss(*args, ref_logprobs=torch.zeros(1, 1), kl_coef=-1.0)


@pytest.mark.parametrize(
    "aggregation", ["token_mean", "seq_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm"]
)
def test_masked_positions_have_no_effect(aggregation: str) -> None:
    gen = torch.Generator().manual_seed(1)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    base = [-torch.rand(3, 5, generator=gen) for _ in range(4)]
    junk = [torch.randn(3, 5, generator=gen) * 50 for _ in range(4)]
    junk[0][0, 4] = float("inf")
    junk[2][1, 2] = float("-inf")
    junk[3][1, 3] = float("nan")

    def run(tensors: list[Tensor]) -> tuple[float, Tensor]:
        logprobs = tensors[0].clone().requires_grad_(True)
        loss, _ = grpo_loss(
            logprobs,
            tensors[1],
            torch.tensor([1.0, -0.5, 2.0]),
            mask,
            ref_logprobs=tensors[2],
            kl_coef=0.05,
            entropy=tensors[3],
            entropy_coef=0.01,
            aggregation=aggregation,  # type: ignore[arg-type]
        )
        loss.backward()
        assert logprobs.grad is not None
        return float(loss.detach()), logprobs.grad

    clean_loss, clean_grad = run(base)
    dirty = [torch.where(mask, b, j) for b, j in zip(base, junk, strict=True)]
    dirty_loss, dirty_grad = run(dirty)
    assert math.isfinite(dirty_loss)
    assert dirty_loss == clean_loss
    assert torch.equal(dirty_grad, clean_grad)
    assert bool((dirty_grad[~mask] == 0).all())


# --- logits helpers --------------------------------------------------------------------------


def test_entropy_of_uniform_logits_is_log_vocab() -> None:
    close(entropy_from_logits(torch.zeros(2, 3, 7)), torch.full((2, 3), math.log(7)))
    close(entropy_from_logits(torch.full((4, 11), 1e4)), torch.full((4,), math.log(11)))


def test_entropy_by_hand() -> None:
    # p = [1/2, 1/4, 1/4]: H = 0.5 log 2 + 2 * 0.25 log 4 = 1.5 log 2 = 1.039721
    logits = torch.log(torch.tensor([0.5, 0.25, 0.25]))
    close(entropy_from_logits(logits), 1.039721)
    # a banned token (-inf) is ignored: p = [1/2, 1/2, 0], H = log 2
    close(entropy_from_logits(torch.tensor([0.0, 0.0, float("-inf")])), 0.693147)
    close(entropy_from_logits(torch.tensor([5.0, float("-inf")])), 0.0, tol=0)


def test_token_logprobs_by_hand() -> None:
    # logits log([1/2, 1/4, 1/4]) + 3: picked tokens 0 and 2
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]])) + 3.0
    close(token_logprobs(logits, torch.tensor([0, 2])), [math.log(0.5), math.log(0.25)])
    with pytest.raises(ValueError, match="tokens"):
        token_logprobs(logits, torch.tensor([0, 1, 2]))
