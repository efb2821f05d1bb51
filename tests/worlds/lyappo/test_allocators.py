"""Closed-form allocators vs. their cvxpy twins on thousands of random instances.

Every instance checks feasibility of the closed form (to 1e-9 relative) and that its objective is
never worse than cvxpy's optimum by more than 1e-6 relative.
"""

import numpy as np
import pytest
from cvx_twins import cvx_edge_cpu, cvx_local_cpu, cvx_transmission, edge_objective, local_objective, tx_objective

from splitrl.physics.channel import shannon_rate
from splitrl.worlds.lyappo.allocators import allocate_edge_cpu, allocate_local_cpu, allocate_transmission

N_INSTANCES = 1200
REL_GAP = 1e-6
FEAS = 1e-9


def _queues(rng, scale):
    """Backlogs of random count and spread: zeros, ties, a single service, many decades."""
    n = int(rng.integers(1, 9))
    kind = rng.integers(0, 5)
    if kind == 0:
        Q = scale * 10.0 ** rng.uniform(-6, 1, n)
    elif kind == 1:
        Q = scale * rng.uniform(0, 1, n)
    elif kind == 2:
        Q = np.full(n, scale * 10.0 ** rng.uniform(-3, 1))  # ties
    elif kind == 3:
        Q = scale * 10.0 ** rng.uniform(-6, 1, n)
        Q[rng.random(n) < 0.5] = 0.0  # some empty queues
    else:
        Q = np.zeros(n)
        Q[rng.integers(n)] = scale * 10.0 ** rng.uniform(-4, 1)
    return Q


def _no_worse(obj, ref, scale):
    """``obj <= ref`` up to 1e-6 relative; ``scale`` (tau * max Q * natural allocation) is the
    objective's natural unit, used as the yardstick when the optimum itself is ~0."""
    return obj <= ref + REL_GAP * max(abs(ref), 1e-3 * scale)


def test_local_cpu_matches_cvxpy_optimum():
    rng = np.random.default_rng(1)
    for i in range(N_INSTANCES):
        tau = 10.0 ** rng.uniform(-3, -1)
        Q = _queues(rng, 10.0 ** rng.uniform(5, 11))
        kappa = 10.0 ** rng.uniform(-29, -26)
        weight = 0.0 if i % 50 == 0 else 10.0 ** rng.uniform(8, 22)
        f_max = 10.0 ** rng.uniform(7, 11)
        kw = dict(tau=tau, weight=weight, kappa=kappa, f_max=f_max)
        f = allocate_local_cpu(Q, **kw)
        assert np.all(f >= 0) and np.all(f <= Q / tau * (1 + FEAS))
        assert f.sum() <= f_max * (1 + FEAS)
        _, ref = cvx_local_cpu(Q, **kw)
        obj = local_objective(Q, f, tau=tau, weight=weight, kappa=kappa)
        assert _no_worse(obj, ref, tau * Q.max() * min(f_max, Q.sum() / tau)), (i, Q, kw, obj, ref)


def test_transmission_matches_cvxpy_optimum():
    rng = np.random.default_rng(2)
    for i in range(N_INSTANCES):
        tau = 10.0 ** rng.uniform(-3, -1)
        Q = _queues(rng, 10.0 ** rng.uniform(2, 8))
        bandwidth = 10.0 ** rng.uniform(4, 7)
        noise_psd = 10.0 ** rng.uniform(-21, -18)
        gain = 10.0 ** rng.uniform(-14, -8) if i % 97 else 0.0
        p_max = 10.0 ** rng.uniform(-2, 0.5)
        weight = 0.0 if i % 50 == 0 else 10.0 ** rng.uniform(3, 14)
        kw = dict(tau=tau, weight=weight, bandwidth=bandwidth, noise_psd=noise_psd, p_max=p_max)
        r, p = allocate_transmission(Q, gain, **kw)
        assert np.all(r >= 0) and np.all(r <= Q / tau * (1 + FEAS))
        assert 0 <= p <= p_max
        cap = shannon_rate(p, gain, bandwidth_hz=bandwidth, noise_psd_w_per_hz=noise_psd)
        assert r.sum() <= cap * (1 + FEAS) + 1e-9
        _, _, ref = cvx_transmission(Q, gain, **kw)
        obj = tx_objective(Q, r, p, tau=tau, weight=weight)
        r_max = shannon_rate(p_max, gain, bandwidth_hz=bandwidth, noise_psd_w_per_hz=noise_psd)
        assert _no_worse(obj, ref, tau * Q.max() * min(r_max, Q.sum() / tau)), (i, Q, gain, kw, obj, ref)


def test_edge_cpu_matches_cvxpy_optimum_and_theorem_1():
    rng = np.random.default_rng(3)
    for _ in range(N_INSTANCES):
        tau = 10.0 ** rng.uniform(-3, -1)
        Q = np.concatenate([_queues(rng, 10.0 ** rng.uniform(5, 11)) for _ in range(rng.integers(1, 5))])
        f_max = 10.0 ** rng.uniform(8, 12)
        f = allocate_edge_cpu(Q, tau=tau, f_max=f_max)
        assert np.all(f >= 0) and np.all(f <= Q / tau * (1 + FEAS))
        assert f.sum() <= f_max * (1 + FEAS)
        # Theorem 1: in decreasing order of Q, full caps, then one partial queue, then zeros.
        order = np.argsort(-Q, kind="stable")
        fs, caps = f[order], Q[order] / tau
        full = np.isclose(fs, caps, rtol=1e-12, atol=0)
        partial = ~full & (fs > 0)
        assert partial.sum() <= 1
        first_short = np.argmax(~full) if (~full).any() else len(fs)
        assert np.all(full[:first_short]) and np.all(fs[first_short + 1 :] == 0)
        if caps.sum() > f_max:
            assert np.isclose(f.sum(), f_max, rtol=1e-12)
        _, ref = cvx_edge_cpu(Q, tau=tau, f_max=f_max)
        assert _no_worse(edge_objective(Q, f, tau=tau), ref, tau * Q.max() * min(f_max, Q.sum() / tau))


def test_allocators_vectorise_over_leading_dims():
    rng = np.random.default_rng(4)
    Q = rng.uniform(0, 1e9, size=(5, 4, 3))
    Q[0, 0] = 0.0
    kw = dict(tau=0.01, weight=1e17, kappa=1e-28, f_max=1.5e9)
    f = allocate_local_cpu(Q, **kw)
    gain = rng.uniform(1e-11, 1e-10, size=(5, 4))
    r, p = allocate_transmission(Q / 1e3, gain, tau=0.01, weight=1e10, bandwidth=2.5e5, noise_psd=4e-21, p_max=0.3)
    fe = allocate_edge_cpu(Q.reshape(5, 12), tau=0.01, f_max=2e10)
    for i in range(5):
        for j in range(4):
            np.testing.assert_array_equal(f[i, j], allocate_local_cpu(Q[i, j], **kw))
            r1, p1 = allocate_transmission(
                Q[i, j] / 1e3, gain[i, j], tau=0.01, weight=1e10, bandwidth=2.5e5, noise_psd=4e-21, p_max=0.3
            )
            np.testing.assert_array_equal(r[i, j], r1)
            assert p[i, j] == p1
        np.testing.assert_array_equal(fe[i], allocate_edge_cpu(Q[i].reshape(12), tau=0.01, f_max=2e10))
    # per-batch parameters broadcast too
    fmax = np.array([1e8, 1e9, 1e10, 1e11, 0.0])[:, None]
    f2 = allocate_local_cpu(Q, tau=0.01, weight=1e17, kappa=1e-28, f_max=fmax)
    assert np.all(f2.sum(-1) <= fmax * (1 + FEAS))
    assert np.all(f2[4] == 0)


def test_lyapunov_weight_trades_energy_for_backlog():
    """Raising the weight never raises the chosen total frequency / power (monotone in V)."""
    Q = np.array([3e8, 1e8, 5e7])
    totals = [
        allocate_local_cpu(Q, tau=0.01, weight=w, kappa=1e-28, f_max=1.5e9).sum()
        for w in (0, 1e15, 1e16, 1e17, 1e18, 1e19)
    ]
    assert all(a >= b for a, b in zip(totals, totals[1:])) and totals[0] > totals[-1]
    powers = [
        allocate_transmission(Q / 100, 6e-11, tau=0.01, weight=w, bandwidth=2.5e5, noise_psd=4e-21, p_max=0.3)[1]
        for w in (0, 1e10, 1e12, 1e14, 1e16)
    ]
    assert all(a >= b for a, b in zip(powers, powers[1:])) and powers[0] > powers[-1]


@pytest.mark.parametrize("weight", [0.0, 1e17])
def test_local_cpu_stationarity(weight):
    """Interior optimum: 3 w kappa S^2 equals the backlog of the partially served queue."""
    Q = np.array([4e8, 2e8, 1e8])
    f = allocate_local_cpu(Q, tau=0.01, weight=weight, kappa=1e-28, f_max=1e12)
    if weight == 0:
        np.testing.assert_allclose(f, Q / 0.01)
    else:
        S = f.sum()
        partial = (f > 0) & (f < Q / 0.01 * (1 - 1e-12))
        assert partial.sum() == 1
        np.testing.assert_allclose(3 * weight * 1e-28 * S**2, Q[partial][0], rtol=1e-9)
