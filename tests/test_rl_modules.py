"""RL modules: hybrid log-probabilities (ray issue #53994), actor/critic shapes, DDPG wiring."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

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
    cats = [c.logp(a[:, i].long()) for i, c in enumerate(dist._cats)]
    normals = dist._normal.log_prob(a[:, 4:])
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
    expand = lambda d: type(d).from_logits(  # noqa: E731
        torch.cat([torch.cat([c.logits for c in d._cats], -1), d._normal.mean, d._normal.stddev.log()], -1).expand(
            n, -1
        )
    )
    P, Q = expand(p), expand(q)
    torch.manual_seed(5)
    a = P.sample()
    lp, lq = P.logp(a), Q.logp(a)
    se = lp.std() / n**0.5
    assert abs(float(-lp.mean() - p.entropy()[0])) < 4 * se
    assert abs(float((lp - lq).mean() - p.kl(q)[0])) < 4 * (lp - lq).std() / n**0.5
    # and the gated entropy is below the ungated one (unused slots no longer count)
    full = hybrid_dist_cls(GNVEC, 3).from_logits(
        torch.cat([torch.cat([c.logits for c in p._cats], -1), p._normal.mean, p._normal.stddev.log()], -1)
    )
    assert float(p.entropy()[0]) < float(full.entropy()[0])


def test_gate_entropy_is_the_window_entries_entropy_alone():
    _, dist = _gated(5, 6)
    torch.testing.assert_close(dist.gate_entropy(), dist._cats[0].entropy())
    # a joint action of two devices, each with its own window entry: the sum of both
    two = {
        "discrete": GATES["discrete"] + [None, [4, 0], [4, 1], [4, 2]],
        "continuous": GATES["continuous"] + [[4, 0], [4, 1], [4, 2]],
    }
    g = torch.Generator().manual_seed(7)
    joint = hybrid_dist_cls(GNVEC * 2, 6, two).from_logits(torch.randn(5, 2 * sum(GNVEC) + 12, generator=g))
    torch.testing.assert_close(joint.gate_entropy(), joint._cats[0].entropy() + joint._cats[4].entropy())
    # without gates there is no window: zero
    plain = hybrid_dist_cls(GNVEC, 3).from_logits(torch.randn(5, sum(GNVEC) + 6, generator=g))
    assert torch.equal(plain.gate_entropy(), torch.zeros(5))


def test_gates_must_name_an_ungated_window_entry():
    with pytest.raises(ValueError, match="ungated discrete entry"):
        hybrid_dist_cls(GNVEC, 3, {"discrete": [None, [1, 0], [0, 1], [0, 2]], "continuous": [[0, 0]] * 3})
    with pytest.raises(ValueError, match="expected 4 discrete and 3 continuous"):
        hybrid_dist_cls(GNVEC, 3, {"discrete": [None], "continuous": []})
