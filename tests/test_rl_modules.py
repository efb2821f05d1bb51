"""RL modules: hybrid log-probabilities (ray issue #53994), actor/critic shapes, DDPG wiring."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from reference_hybrid import reference_dist_cls

from splitrl.rl.central import CentralPPOModule
from splitrl.rl.distributions import hybrid_dist_cls
from splitrl.worlds.lyappo.ddpg import DDPGModule

NVEC = [3, 5, 2]
C = 4


def _inputs(B, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, sum(NVEC) + 2 * C, generator=g)


@pytest.mark.parametrize("B", [1, 7])
def test_hybrid_logp_equals_manual_sum(B):
    cls = hybrid_dist_cls(NVEC, C)
    logits = _inputs(B)
    dist = cls.from_logits(logits)
    torch.manual_seed(1)
    a = dist.sample()
    assert a.shape == (B, len(NVEC) + C)
    lp = dist.logp(a)
    assert lp.shape == (B,)
    manual = torch.zeros(B)
    off = 0
    for i, n in enumerate(NVEC):
        manual += torch.log_softmax(logits[:, off : off + n], -1).gather(1, a[:, i].long()[:, None])[:, 0]
        off += n
    mean, log_std = logits[:, off : off + C], logits[:, off + C :].clamp(-20.0, 2.0)  # the std is bounded
    manual += (-0.5 * ((a[:, len(NVEC) :] - mean) / log_std.exp()) ** 2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
    torch.testing.assert_close(lp, manual)
    # discrete parts are category indices; entropy/kl have batch shape; kl(self) = 0
    assert torch.all(a[:, : len(NVEC)] == a[:, : len(NVEC)].round())
    assert dist.entropy().shape == (B,)
    torch.testing.assert_close(dist.kl(cls.from_logits(logits)), torch.zeros(B))
    det = dist.to_deterministic().sample()
    torch.testing.assert_close(det[:, len(NVEC) :], mean)


def test_hybrid_logp_gradients_reach_every_input():
    cls = hybrid_dist_cls(NVEC, C)
    logits = _inputs(5).requires_grad_(True)
    dist = cls.from_logits(logits)
    a = dist.sample()
    dist.logp(a).sum().backward()
    assert torch.all(logits.grad.abs().sum(0) > 0)


def test_central_module_multidiscrete_and_hybrid():
    obs_space = gym.spaces.Box(0, np.inf, (10,), np.float32)
    md = CentralPPOModule(
        observation_space=obs_space,
        action_space=gym.spaces.MultiDiscrete([3, 5, 3, 5]),
        model_config={"hidden": [32, 32]},
    )
    obs = torch.rand(6, 10)
    out = md.forward_train({Columns.OBS: obs})
    assert out[Columns.ACTION_DIST_INPUTS].shape == (6, 16)
    assert md.compute_values({Columns.OBS: obs}).shape == (6,)
    dist = md.get_train_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
    assert dist.logp(dist.sample()).shape == (6,)
    # actor and critic share no parameter
    assert not {id(p) for p in md.actor.parameters()} & {id(p) for p in md.critic.parameters()}
    box = gym.spaces.Box(np.array([0, 0, -np.inf], np.float32), np.array([2, 4, np.inf], np.float32))
    hy = CentralPPOModule(
        observation_space=obs_space, action_space=box, model_config={"hidden": [32], "discrete_nvec": [3, 5]}
    )
    dist = hy.get_train_action_dist_cls().from_logits(hy.forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS])
    a = dist.sample()
    assert a.shape == (6, 3) and dist.logp(a).shape == (6,)


def test_ddpg_module_actor_loss_leaves_critic_alone():
    obs_space = gym.spaces.Box(0, np.inf, (6,), np.float32)
    m = DDPGModule(
        observation_space=obs_space,
        action_space=gym.spaces.Box(-1, 1, (3,), np.float32),
        model_config={"hidden": [16, 16], "exploration_noise": 0.5},
    )
    m.make_target_networks()
    obs = torch.rand(8, 6)
    explore = m.forward_exploration({Columns.OBS: obs})[Columns.ACTIONS]
    assert explore.shape == (8, 3) and explore.abs().max() <= 1.0
    greedy = m.forward_inference({Columns.OBS: obs})[Columns.ACTIONS]
    assert not torch.allclose(explore, greedy)
    out = m.forward_train({Columns.OBS: obs, Columns.NEXT_OBS: torch.rand(8, 6), Columns.ACTIONS: explore})
    (-out["q_curr"].mean()).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m.critic.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.actor.parameters())
    assert not out["q_target_next"].requires_grad
    pairs = m.get_target_network_pairs()
    assert [type(a) for a, _ in pairs] == [type(b) for _, b in pairs]


# a window size W in {1, 2, 3} (entry 0 = W - 1), then one categorical and one real per task slot
GNVEC = [3, 4, 4, 4]
GATES = {"discrete": [None, [0, 0], [0, 1], [0, 2]], "continuous": [[0, 0], [0, 1], [0, 2]]}


def _gated(B, seed):
    g = torch.Generator().manual_seed(seed)
    cls = hybrid_dist_cls(GNVEC, 3, GATES)
    return cls, cls.from_logits(torch.randn(B, sum(GNVEC) + 6, generator=g))


def test_gated_logp_counts_only_the_slots_the_window_uses():
    _, dist = _gated(6, 0)
    torch.manual_seed(2)
    a = dist.sample()
    a[:, 0] = torch.tensor([0, 1, 2, 0, 1, 2], dtype=a.dtype)
    lp = dist.logp(a)
    ref = reference_dist_cls(type(dist)).from_logits(dist.inputs)
    cats = [c.logp(a[:, i].long()) for i, c in enumerate(ref._cats)]
    normals = ref._normal.log_prob(a[:, 4:])
    for b in range(6):
        w = int(a[b, 0]) + 1
        manual = cats[0][b] + sum(cats[1 + x][b] + normals[b, x] for x in range(w))
        torch.testing.assert_close(lp[b], manual)
    # changing a slot the window does not use leaves the log-prob alone; a used slot changes it
    b = 0  # W = 1
    other = a.clone()
    other[b, 2], other[b, 5] = (other[b, 2] + 1) % 4, other[b, 5] + 3.0
    torch.testing.assert_close(dist.logp(other)[b], lp[b])
    other[b, 1] = (other[b, 1] + 1) % 4
    assert not torch.isclose(dist.logp(other)[b], lp[b])


def test_gated_entropy_and_kl_are_expectations_of_the_gated_logp():
    # H = E[-log p(a)], KL(p||q) = E_p[log p(a) - log q(a)] over the effective action: Monte Carlo
    _, p = _gated(1, 3)
    _, q = _gated(1, 4)
    n = 200_000
    expand = lambda d: type(d).from_logits(d.inputs.expand(n, -1))  # noqa: E731
    P, Q = expand(p), expand(q)
    torch.manual_seed(5)
    a = P.sample()
    lp, lq = P.logp(a), Q.logp(a)
    se = lp.std() / n**0.5
    assert abs(float(-lp.mean() - p.entropy()[0])) < 4 * se
    assert abs(float((lp - lq).mean() - p.kl(q)[0])) < 4 * (lp - lq).std() / n**0.5
    # and the gated entropy is below the ungated one (unused slots no longer count)
    full = hybrid_dist_cls(GNVEC, 3).from_logits(p.inputs)
    assert float(p.entropy()[0]) < float(full.entropy()[0])


def test_gate_entropy_is_the_window_entries_entropy_alone():
    _, dist = _gated(5, 6)
    ref = lambda d: reference_dist_cls(type(d)).from_logits(d.inputs)  # noqa: E731
    torch.testing.assert_close(dist.gate_entropy(), ref(dist)._cats[0].entropy())
    # a joint action of two devices, each with its own window entry: the sum of both
    two = {
        "discrete": GATES["discrete"] + [None, [4, 0], [4, 1], [4, 2]],
        "continuous": GATES["continuous"] + [[4, 0], [4, 1], [4, 2]],
    }
    g = torch.Generator().manual_seed(7)
    joint = hybrid_dist_cls(GNVEC * 2, 6, two).from_logits(torch.randn(5, 2 * sum(GNVEC) + 12, generator=g))
    torch.testing.assert_close(joint.gate_entropy(), ref(joint)._cats[0].entropy() + ref(joint)._cats[4].entropy())
    # without gates there is no window: zero
    plain = hybrid_dist_cls(GNVEC, 3).from_logits(torch.randn(5, sum(GNVEC) + 6, generator=g))
    assert torch.equal(plain.gate_entropy(), torch.zeros(5))


def test_gates_must_name_an_ungated_window_entry():
    with pytest.raises(ValueError, match="ungated discrete entry"):
        hybrid_dist_cls(GNVEC, 3, {"discrete": [None, [1, 0], [0, 1], [0, 2]], "continuous": [[0, 0]] * 3})
    with pytest.raises(ValueError, match="expected 4 discrete and 3 continuous"):
        hybrid_dist_cls(GNVEC, 3, {"discrete": [None], "continuous": []})


# the EMH agent's layout: window size W in 1..5, then (point, channel, server) per task slot, one
# power per slot; and an ungated multi-entry case with unequal category counts
EMH_NVEC = [5] + [23, 2, 2] * 5
EMH_GATES = {
    "discrete": [None] + [[0, x] for x in range(5) for _ in range(3)],
    "continuous": [[0, x] for x in range(5)],
}
CASES = [(EMH_NVEC, 5, EMH_GATES), (NVEC, C, None), ([7, 1, 4], 0, None)]


@pytest.mark.parametrize("nvec,c,gates", CASES)
def test_vectorised_hybrid_equals_the_per_entry_reference_values_and_gradients(nvec, c, gates):
    # logp, entropy, KL, the window entropy and the mode, and the gradients of a PPO-like loss
    # of them, on many random inputs and actions (some drawn far out: saturated logits); in float64,
    # so that the two summation orders agree to 1e-10
    cls = hybrid_dist_cls(nvec, c, gates)
    ref_cls = reference_dist_cls(cls)
    g = torch.Generator().manual_seed(11)
    for trial in range(20):
        B = int(torch.randint(1, 300, (1,), generator=g))
        scale = 8.0 if trial % 5 == 4 else 1.5
        x = (scale * torch.randn(B, sum(nvec) + 2 * c, generator=g, dtype=torch.float64)).requires_grad_(True)
        y = torch.randn(B, sum(nvec) + 2 * c, generator=g, dtype=torch.float64).requires_grad_(True)
        xr, yr = x.detach().clone().requires_grad_(True), y.detach().clone().requires_grad_(True)
        new, old = cls.from_logits(x), ref_cls.from_logits(xr)
        torch.manual_seed(trial)
        a = old.sample()
        new.sample()  # sampling first (under no_grad) must not cut the loss's graph
        if gates:
            a[:, 0] = torch.randint(0, nvec[0], (B,), generator=g).to(a.dtype)
        adv = torch.randn(B, generator=g, dtype=torch.float64)
        outs = []
        for d, other, inp in ((new, cls.from_logits(y), (x, y)), (old, ref_cls.from_logits(yr), (xr, yr))):
            lp, ent, kl, gent = d.logp(a), d.entropy(), d.kl(other), d.gate_entropy()
            loss = -(adv * torch.exp(lp - lp.detach())).mean() - 0.01 * ent.mean() + kl.mean() - 0.1 * gent.mean()
            gx, gy = torch.autograd.grad(loss, inp)
            outs.append((lp, ent, kl, gent, d.to_deterministic().sample(), gx, gy))
        for got, want in zip(*outs):
            torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-10, atol=1e-10)


def test_vectorised_hybrid_samples_follow_its_probabilities():
    # empirical frequencies of every category of every entry against the probabilities, and the
    # Gaussian part's mean and std, on one input repeated n times
    cls = hybrid_dist_cls(EMH_NVEC, 5, EMH_GATES)
    g = torch.Generator().manual_seed(3)
    n = 40_000
    dist = cls.from_logits((2.0 * torch.randn(1, sum(EMH_NVEC) + 10, generator=g)).expand(n, -1))
    torch.manual_seed(4)
    a = dist.sample()
    D = len(EMH_NVEC)
    assert torch.all(a[:, :D] == a[:, :D].round())
    for j, k in enumerate(EMH_NVEC):
        idx = a[:, j].long()
        assert int(idx.min()) >= 0 and int(idx.max()) < k
        freq = torch.bincount(idx, minlength=k).double() / n
        p = dist.entry_probs(j)[0].double()
        assert torch.all((freq - p).abs() <= 5 * torch.sqrt(p * (1 - p) / n) + 1e-4), j
    cont = a[:, D:]
    torch.testing.assert_close(cont.mean(0), dist.mean[0], atol=5 * float(dist.log_std.exp().max()) / n**0.5, rtol=0)
    torch.testing.assert_close(cont.std(0), dist.log_std[0].exp(), rtol=0.03, atol=0)


def test_multi_categorical_equals_rllibs_values_gradients_and_integer_actions():
    from ray.rllib.core.distribution.torch.torch_distribution import TorchMultiCategorical

    from splitrl.rl.distributions import multi_categorical_cls

    nvec = [4, 4, 7, 2, 4, 7]
    ours, rllib = multi_categorical_cls(nvec), TorchMultiCategorical.get_partial_dist_cls(input_lens=nvec)
    g = torch.Generator().manual_seed(5)
    x = (3 * torch.randn(64, sum(nvec), generator=g, dtype=torch.float64)).requires_grad_(True)
    y = torch.randn(64, sum(nvec), generator=g, dtype=torch.float64)
    a, b = ours.from_logits(x), rllib.from_logits(x)
    act = b.sample()
    mine = a.sample()
    assert mine.dtype == torch.int64 and mine.shape == act.shape
    assert all(int(mine[:, j].max()) < n for j, n in enumerate(nvec))
    outs = []
    for d, other in ((a, ours.from_logits(y)), (b, rllib.from_logits(y))):
        vals = (d.logp(act), d.entropy(), d.kl(other))
        grads = torch.autograd.grad(sum(v.sum() for v in vals), x)
        outs.append((*vals, *grads, d.to_deterministic().sample()))
    for got, want in zip(*outs):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
