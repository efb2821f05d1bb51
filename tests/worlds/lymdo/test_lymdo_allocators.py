"""LyMDO's allocators (P3, P4, P5) against cvxpy twins, their KKT conditions, the paper's oracle
values, batch shapes, and ``md1_sojourn`` against a discrete-event M/D/1 simulation."""

from __future__ import annotations

import numpy as np
import pytest
from cvx_twins import cvx_bandwidth, cvx_edge_cpu_sqrt, cvx_ue_cpu

from splitrl.worlds.lymdo.allocators import (
    allocate_bandwidth,
    allocate_edge_cpu_sqrt,
    allocate_ue_cpu,
    bandwidth_weight,
    fdma_rate,
    md1_sojourn,
    snr_full_band,
    ue_cpu_objective,
)

V, KAPPA, FMAX = 10.0, 1e-28, 1.5e9
D_ALEX, D_RES = 85.7026e6, 217.6888e6  # cycles per task, fully local (notes 1.2)


@pytest.mark.parametrize(
    "Q, d, f_want, t_want, e_want_mj",
    [
        (0, D_ALEX, 1.5e9, 0.06190, 48.2077),
        (10, D_ALEX, 1.341858e9, 0.06994, 38.5787),
        (100, D_ALEX, 0.679246e9, 0.15524, 9.8853),
        (100, D_RES, 0.902378e9, 0.42452, 44.3152),
        (1000, D_RES, 0.668616e9, 1.03779, 24.3293),
    ],
)
def test_ue_cpu_reproduces_the_notes_oracle(Q, d, f_want, t_want, e_want_mj):
    f = allocate_ue_cpu(np.array([Q]), np.array([d]), np.array([2.5]), V=V, kappa=KAPPA, f_max=FMAX)[0]
    assert f == pytest.approx(f_want, rel=1e-6)
    assert md1_sojourn(d, 2.5, f) == pytest.approx(t_want, rel=1e-4)
    assert KAPPA * f**2 * d * 2.5 * 1e3 == pytest.approx(e_want_mj, rel=1e-5)


def test_ue_cpu_matches_cvxpy_and_its_kkt_conditions_on_random_instances():
    rng = np.random.default_rng(1)
    n = 400
    Q = np.where(rng.random(n) < 0.15, 0.0, 10 ** rng.uniform(-2, 4, n))
    lam = np.where(rng.random(n) < 0.1, 0.0, rng.uniform(0.05, 6.0, n))
    d = 10 ** rng.uniform(5, 8.3, n)
    fmax = 10 ** rng.uniform(8.7, 10, n)
    fmax = np.maximum(fmax, 1.05 * lam * d)
    tau = 10 ** rng.uniform(-2, 0.5, n)
    f = allocate_ue_cpu(Q, d, lam, V=V, kappa=KAPPA, f_max=fmax, tau=tau)
    assert np.all(f > lam * d) and np.all(f <= fmax)
    g = ue_cpu_objective(Q, d, lam, f, V=V, kappa=KAPPA, tau=tau)
    a = Q * KAPPA * d * lam * tau
    slope = 2 * a * f - V * d / 2 * (1 / f**2 + 1 / (f - lam * d) ** 2)
    interior = f < fmax
    assert np.all(np.abs(slope[interior]) <= 1e-6 * (2 * a * f + V * d / f**2)[interior])  # g'(f*) = 0
    assert np.all(slope[~interior] <= 0)  # or the cap, where g' <= 0
    for i in range(0, n, 4):
        ref = cvx_ue_cpu(Q[i], d[i], lam[i], V=V, kappa=KAPPA, f_max=fmax[i], tau=tau[i])
        g_ref = ue_cpu_objective(Q[i], d[i], lam[i], ref, V=V, kappa=KAPPA, tau=tau[i])
        assert g[i] <= g_ref * (1 + 1e-6), i


def test_ue_cpu_is_nonincreasing_in_the_queue_and_zero_without_work():
    Q = np.array([0.0, 1.0, 10.0, 100.0, 1e3, 1e4])
    f = allocate_ue_cpu(Q, np.full(6, D_RES), np.full(6, 2.5), V=V, kappa=KAPPA, f_max=FMAX)
    assert np.all(np.diff(f) <= 0) and f[0] == FMAX
    assert allocate_ue_cpu(np.ones(2), np.zeros(2), np.ones(2), V=V, kappa=KAPPA, f_max=FMAX).tolist() == [0, 0]
    with pytest.raises(ValueError, match="f_max"):
        allocate_ue_cpu(np.ones(1), np.array([D_RES]), np.array([7.0]), V=V, kappa=KAPPA, f_max=FMAX)
    with pytest.raises(ValueError, match="Q"):
        allocate_ue_cpu(np.array([np.nan]), np.array([D_RES]), np.array([1.0]), V=V, kappa=KAPPA, f_max=FMAX)


def test_edge_cpu_is_the_square_root_rule_and_matches_cvxpy():
    d = np.array([D_ALEX, D_ALEX, D_RES, D_RES, D_RES])
    f = allocate_edge_cpu_sqrt(d, f_max=15e9)
    np.testing.assert_allclose(f / 1e9, [2.21198, 2.21198, 3.52535, 3.52535, 3.52535], rtol=1e-5)
    assert V * np.sum(d / f) == pytest.approx(2.6273835, rel=1e-4)  # the notes' optimal value
    rng = np.random.default_rng(2)
    for _ in range(300):
        n = int(rng.integers(1, 7))
        d = np.where(rng.random(n) < 0.3, 0.0, 10 ** rng.uniform(4, 9, n))
        F = 10 ** rng.uniform(9, 11)
        f = allocate_edge_cpu_sqrt(d, f_max=F)
        assert f.sum() <= F * (1 + 1e-12) and np.all(f[d == 0] == 0)
        if (d > 0).any():
            ratio = f[d > 0] / np.sqrt(d[d > 0])
            np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)  # KKT: f / sqrt(d) equal
            _, ref = cvx_edge_cpu_sqrt(d, f_max=F)
            assert np.sum(d[d > 0] / f[d > 0]) <= ref * (1 + 1e-6)


def test_bandwidth_reproduces_the_oracle_and_equal_users_split_evenly():
    s = np.array([23.79411837, 79.31372791, 158.62745582, 39.65686396, 118.97059187])
    w = np.array([12042240, 13547520, 12042240, 18063360, 12343296.0])
    a = allocate_bandwidth(w, s, bandwidth_hz=5e6)
    np.testing.assert_allclose(a, [0.20278488, 0.19678345, 0.17626737, 0.24213377, 0.18203054], atol=1e-8)
    assert np.sum(w / fdma_rate(a, s, bandwidth_hz=5e6)) == pytest.approx(8.1826727, rel=1e-7)
    np.testing.assert_allclose(allocate_bandwidth(np.ones(4), np.full(4, 30.0), bandwidth_hz=5e6), 0.25)
    assert allocate_bandwidth(np.zeros(3), np.ones(3), bandwidth_hz=5e6).tolist() == [0, 0, 0]
    assert allocate_bandwidth(np.array([0.0, 5.0, 0.0]), np.ones(3), bandwidth_hz=5e6).tolist() == [0, 1, 0]


def _marginal(w, s, a, W):
    """-d/d alpha of w / R(alpha): equal across the active UEs at the optimum (KKT)."""
    x = s / a
    n = np.log1p(x) - x / (1 + x)
    return w * np.log(2) * x**2 * n / (s**2 * W * np.log1p(x) ** 2)


def test_bandwidth_matches_cvxpy_and_kkt_on_random_instances():
    rng = np.random.default_rng(3)
    W = 5e6
    checked = 0
    for i in range(600):
        n = int(rng.integers(1, 9))
        w = np.where(rng.random(n) < 0.2, 0.0, 10 ** rng.uniform(2, 9, n))
        s = 10 ** rng.uniform(-3, 5, n)
        a = allocate_bandwidth(w, s, bandwidth_hz=W)
        on = w > 0
        assert np.all(a >= 0) and a.sum() <= 1 + 1e-12 and np.all(a[~on] == 0)
        if not on.any():
            continue
        assert a.sum() == pytest.approx(1.0, abs=1e-12)
        m = _marginal(w[on], s[on], a[on], W)
        np.testing.assert_allclose(m, m.mean(), rtol=1e-9)
        if i % 3 == 0 and np.ptp(np.log10(w[on])) < 6 and np.ptp(np.log10(s[on])) < 6:
            try:
                _, ref = cvx_bandwidth(w, s, bandwidth_hz=W)
            except RuntimeError:
                continue  # the conic solver's own failure on a badly scaled instance
            mine = np.sum(w[on] / fdma_rate(a[on], s[on], bandwidth_hz=W))
            assert mine <= ref * (1 + 1e-6), (i, mine, ref)
            checked += 1
    assert checked > 100


def test_bandwidth_share_grows_with_its_own_weight():
    rng = np.random.default_rng(4)
    for _ in range(100):
        w = 10 ** rng.uniform(5, 8, 4)
        s = 10 ** rng.uniform(0, 3, 4)
        a0 = allocate_bandwidth(w, s, bandwidth_hz=5e6)
        w2 = w.copy()
        w2[0] *= 1.5
        assert allocate_bandwidth(w2, s, bandwidth_hz=5e6)[0] >= a0[0] - 1e-12


def test_batch_shapes_and_broadcasting():
    rng = np.random.default_rng(5)
    w = 10 ** rng.uniform(5, 8, (3, 4, 5))
    s = 10 ** rng.uniform(0, 3, (3, 4, 5))
    a = allocate_bandwidth(w, s, bandwidth_hz=5e6)
    assert a.shape == (3, 4, 5)
    np.testing.assert_allclose(a[1, 2], allocate_bandwidth(w[1, 2], s[1, 2], bandwidth_hz=5e6), atol=1e-12)
    Q = rng.uniform(0, 100, (7, 5))
    f = allocate_ue_cpu(Q, np.full((7, 5), D_ALEX), 2.5, V=V, kappa=KAPPA, f_max=FMAX)
    np.testing.assert_allclose(f[3], allocate_ue_cpu(Q[3], np.full(5, D_ALEX), 2.5, V=V, kappa=KAPPA, f_max=FMAX))
    assert allocate_edge_cpu_sqrt(np.ones((2, 3, 4)), f_max=8.0).shape == (2, 3, 4)


def test_rate_is_concave_in_the_share_and_matches_shannon():
    a = np.linspace(0.01, 1, 200)
    r = fdma_rate(a, 80.0, bandwidth_hz=5e6)
    assert np.all(np.diff(r, 2) < 0)  # concave (the paper calls it convex; P5 is convex either way)
    assert fdma_rate(1.0, 80.0, bandwidth_hz=5e6) == pytest.approx(5e6 * np.log2(81))
    assert snr_full_band(1.5788e-11, power_w=0.1, bandwidth_hz=5e6, noise_psd=3.981e-21) == pytest.approx(
        79.31, rel=1e-3
    )
    assert bandwidth_weight(2.0, 1e6, 1.5, V=10, power_w=0.1) == pytest.approx((2 * 0.1 * 1.5 + 10) * 1e6)


def test_md1_sojourn_matches_a_discrete_event_simulation():
    """Poisson arrivals at ``lam``, deterministic service ``d / f``: the mean sojourn over 200,000
    simulated tasks agrees with ``(d/2)(1/f + 1/(f - lam d))`` within 2 %, at three loads."""
    rng = np.random.default_rng(6)
    d, f = 1e8, 1e9  # 0.1 s per task
    for lam in (1.0, 5.0, 8.0):
        arrivals = np.cumsum(rng.exponential(1 / lam, 200_000))
        service = d / f
        done = np.empty_like(arrivals)
        t = 0.0
        for i, a in enumerate(arrivals):  # Lindley's recursion: start when the previous task is done
            t = max(t, a) + service
            done[i] = t
        assert np.mean(done - arrivals) == pytest.approx(float(md1_sojourn(d, lam, f)), rel=0.02), lam
    assert md1_sojourn(0.0, 3.0, 0.0) == 0.0 and md1_sojourn(d, 10.0, f) == np.inf
    assert md1_sojourn(d, 0.0, f) == pytest.approx(d / f)
