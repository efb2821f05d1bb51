"""ENACHI's allocators against grids and cvxpy twins on random instances over wide ranges, the
paper's lemmas as properties, and the cumulative packet accounting."""

from __future__ import annotations

import numpy as np
import pytest
from cvx_twins import cvx_fixed_split, cvx_reference_power, cvx_slot_power

from splitrl.worlds.enachi.accuracy import surrogate
from splitrl.worlds.enachi.allocators import (
    LOCAL,
    PROGRESSIVE,
    RAW,
    allocate_bandwidth,
    reference_power,
    slot_power,
)
from splitrl.worlds.enachi.physics import maps_received, planned_fraction, power_queue_step

N0 = 10 ** (-174 / 10) / 1e3  # W/Hz


def _instances(rng, n):
    """Lemma 2 instances over the notes' ranges: T 10-300 ms, g 1e-15-1e-11, S 1e5-3e7 bit,
    V/N 0.1-1000, Q 1e-3-100, bands 0.1-10 MHz."""
    return dict(
        Q=10 ** rng.uniform(-3, 2, n),
        bandwidth=10 ** rng.uniform(5, 7, n),
        gain=10 ** rng.uniform(-15, -11, n),
        window_s=rng.uniform(0.01, 0.3, n),
        total_bits=10 ** rng.uniform(5, np.log10(3e7), n),
        a=rng.uniform(0.6, 1.0, n),
        b=rng.uniform(0.005, 0.1, n),
        c=10 ** rng.uniform(-3, -0.5, n),
        v_per_device=10 ** rng.uniform(-1, 3, n),
    )


def _value(p, d, clip=True):
    x = planned_fraction(
        p, d["bandwidth"], gain=d["gain"], window_s=d["window_s"], total_bits=d["total_bits"], noise_psd=N0
    )
    acc = surrogate(x, d["a"], d["b"], d["c"]) if clip else d["a"] - d["b"] / (x + d["c"])
    return d["v_per_device"] * acc - d["Q"] * d["window_s"] * p


def test_reference_power_is_the_grid_optimum_on_2000_instances():
    rng = np.random.default_rng(0)
    d = _instances(rng, 2000)
    for clip in (True, False):
        p = reference_power(p_max=2.0, noise_psd=N0, clip=clip, **d)
        assert ((p >= 0) & (p <= 2.0)).all() and np.isfinite(p).all()
        grid = np.linspace(0, 2.0, 20001)[:, None]
        vals = _value(grid, {k: v[None] for k, v in d.items()}, clip)
        best = vals.max(0)
        got = _value(p, d, clip)
        gap = (best - got) / np.maximum(np.abs(best), 1e-12)
        assert gap.max() <= 1e-9, (clip, gap.max())


def test_reference_power_edge_cases():
    base = dict(
        bandwidth=3e6,
        gain=1e-12,
        window_s=0.2,
        total_bits=1.6e6,
        a=0.98,
        b=0.02,
        c=0.01,
        v_per_device=50.0,
        p_max=2.0,
        noise_psd=N0,
    )
    # Q = 0: energy is free, the most useful power (the cap or the power that delivers everything)
    p0 = reference_power(0.0, **base)
    x0 = planned_fraction(p0, base["bandwidth"], gain=1e-12, window_s=0.2, total_bits=1.6e6, noise_psd=N0)
    assert p0 == pytest.approx(2.0) or x0 == pytest.approx(1.0)
    # a narrow band and a short window (alpha -> 0): no overflow, finite, capped
    tiny = reference_power(1.0, **{**base, "bandwidth": 1.0, "window_s": 1e-4})
    assert np.isfinite(tiny) and 0 <= tiny <= 2.0
    # no band or no window: nothing sent
    assert reference_power(1.0, **{**base, "bandwidth": 0.0}) == 0.0
    assert reference_power(1.0, **{**base, "window_s": 0.0}) == 0.0
    # a huge price: nothing sent; a huge V: the cap
    assert reference_power(1e9, **base) == 0.0
    assert reference_power(1e-9, **{**base, "v_per_device": 1e9}) == pytest.approx(
        min(2.0, (2 ** (1.6e6 / (3e6 * 0.2)) - 1) * 3e6 * N0 / 1e-12), rel=1e-9
    )


def test_reference_power_equals_cvxpy_on_random_instances():
    rng = np.random.default_rng(1)
    d = _instances(rng, 60)
    p = reference_power(p_max=2.0, noise_psd=N0, clip=False, **d)
    for i in range(60):
        di = {k: float(v[i]) for k, v in d.items()}
        q = cvx_reference_power(
            di["Q"],
            di["bandwidth"],
            gain=di["gain"],
            window_s=di["window_s"],
            total_bits=di["total_bits"],
            a=di["a"],
            b=di["b"],
            c=di["c"],
            v=di["v_per_device"],
            p_max=2.0,
            noise_psd=N0,
        )
        ours, theirs = _value(p[i], di, False), _value(q, di, False)
        assert ours >= theirs - 1e-7 * max(abs(theirs), 1.0), (i, ours, theirs)


def test_the_objective_is_concave_in_power_and_max_utility_rises_with_bandwidth():
    """Appendix B (concave in p for the unclipped surrogate) and Lemma 3 (max_p U non-decreasing in w)."""
    rng = np.random.default_rng(2)
    d = _instances(rng, 300)
    grid = np.linspace(0, 2.0, 401)[:, None]
    vals = _value(grid, {k: v[None] for k, v in d.items()}, clip=False)
    second = vals[2:] - 2 * vals[1:-1] + vals[:-2]
    assert (second <= 1e-9 * np.abs(vals).max(0)).all()
    bws = np.geomspace(1e4, 2e7, 60)[:, None]
    dd = {k: np.broadcast_to(v[None], (60, 300)) for k, v in d.items() if k != "bandwidth"}
    p = reference_power(bandwidth=bws, p_max=2.0, noise_psd=N0, **dd)
    u = _value(p, {**dd, "bandwidth": np.broadcast_to(bws, (60, 300))})
    assert (np.diff(u, axis=0) >= -1e-9 * np.abs(u).max(0)).all()


def test_slot_power_is_the_kkt_optimum_and_respects_the_cap():
    rng = np.random.default_rng(3)
    n = 2000
    Z = 10 ** rng.uniform(-3, 2, n)
    g = 10 ** rng.uniform(-15, -11, n)
    bw = 10 ** rng.uniform(5, 7, n)
    mb = 10 ** rng.uniform(2, 5, n)
    kw = dict(u_inner=5.0, map_bits=mb, slot_s=1e-3, noise_psd=N0, p_max=2.0)
    p = slot_power(Z, g, bw, **kw)
    grid = np.linspace(0, 2.0, 20001)[:, None]

    def f(pp, i=slice(None)):
        return 5.0 * bw[i] * 1e-3 / mb[i] * np.log2(1 + pp * g[i] / (bw[i] * N0)) - Z[i] * pp

    best = f(grid).max(0)
    assert ((best - f(p)) <= 1e-9 * np.maximum(np.abs(best), 1e-12)).all()
    for i in range(25):
        q = cvx_slot_power(Z[i], g[i], bw[i], u_inner=5.0, map_bits=mb[i], slot_s=1e-3, noise_psd=N0, p_max=2.0)
        assert f(p[i], i) >= f(q, i) - 1e-7 * max(abs(f(q, i)), 1e-9)
    assert (slot_power(0.0, g, bw, **kw) == 2.0).all()  # Z = 0: full power
    assert (slot_power(Z, 0.0, bw, **kw) == 0.0).all()  # no channel: nothing
    rem = 10 ** rng.uniform(0, 5, n)
    capped = slot_power(Z, g, bw, remaining_bits=rem, **kw)
    sent = bw * 1e-3 * np.log2(1 + capped * g / (bw * N0))
    assert (capped <= p + 1e-15).all() and (sent <= rem * (1 + 1e-9)).all()
    assert np.isfinite(slot_power(Z, g, 1.0, remaining_bits=1e9, **kw)).all()  # expm1 never overflows


def test_virtual_power_queue_telescopes():
    rng = np.random.default_rng(4)
    p, ref = rng.uniform(0, 2, (500, 300)), rng.uniform(0, 2, (500, 1))
    Z = np.zeros((500,))
    for t in range(300):
        Z = power_queue_step(Z, p[:, t], ref[:, 0])
    assert (p.mean(1) <= ref[:, 0] + Z / 300 + 1e-12).all()


def test_cumulative_packets_send_big_maps_where_a_per_slot_floor_sends_none():
    rng = np.random.default_rng(5)
    bits = rng.uniform(1000, 6000, (100, 300))  # a slot's bits, below one 25 kbit map
    cum = np.cumsum(bits, 1)
    X = maps_received(cum, 25088.0, 64)
    np.testing.assert_array_equal(X, np.minimum(np.floor(cum / 25088.0), 64))
    assert (np.floor(bits / 25088.0) == 0).all() and X[:, -1].min() > 0
    assert (np.diff(X, axis=1) >= 0).all()


def _fixed_split_instances(rng, batch, n):
    return dict(
        Q=10 ** rng.uniform(-2, 0.5, (batch, n)),
        kind=np.full((batch, n), PROGRESSIVE),
        gain=10 ** rng.uniform(-13, -11.5, (batch, n)),
        window_s=rng.uniform(0.1, 0.28, (batch, n)),
        total_bits=10 ** rng.uniform(5.5, 6.5, (batch, n)),
        a=rng.uniform(0.8, 1.0, (batch, n)),
        b=rng.uniform(0.005, 0.03, (batch, n)),
        c=rng.uniform(0.05, 0.3, (batch, n)),
        a_max=np.full((batch, n), 0.99),
        e_local=rng.uniform(0.0, 0.1, (batch, n)),
        local_ok=np.ones((batch, n), bool),
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("n", [1, 2, 4])
def test_exact_bandwidth_equals_cvxpy_and_algorithm_1_is_between_equal_split_and_exact(n):
    rng = np.random.default_rng(10 + n)
    batch = 8
    d = _fixed_split_instances(rng, batch, n)
    kw = dict(total_bw_hz=3e6, v_per_device=50.0 / n, p_max=2.0, noise_psd=N0)
    exact = allocate_bandwidth(d, method="exact", **kw)
    paper = allocate_bandwidth(d, method="paper", **kw)
    equal = allocate_bandwidth(d, method="paper", max_iter=0, **kw)
    assert (exact.bandwidth.sum(-1) <= 3e6 * (1 + 1e-9)).all() and (exact.bandwidth >= 0).all()
    assert (paper.bandwidth.sum(-1) <= 3e6 * (1 + 1e-9)).all()
    assert ((exact.power >= 0) & (exact.power <= 2.0)).all()
    for i in range(batch):
        ref, _, _ = cvx_fixed_split(
            d["Q"][i],
            gain=d["gain"][i],
            window_s=d["window_s"][i],
            total_bits=d["total_bits"][i],
            a=d["a"][i],
            b=d["b"][i],
            c=d["c"][i],
            e_local=d["e_local"][i],
            v=50.0 / n,
            p_max=2.0,
            noise_psd=N0,
            total_bw=3e6,
        )
        got = exact.utility_total[i]
        assert got >= ref - 1e-6 * abs(ref), (i, got, ref)  # never worse than cvxpy
        if (exact.fraction[i] > 0).all():  # every device on: the concave problem cvxpy solves
            assert got <= ref + 1e-6 * abs(ref) + 1e-9, (i, got, ref)
    assert (paper.utility_total <= exact.utility_total + 1e-9 * np.abs(exact.utility_total)).all()
    assert (paper.utility_total >= equal.utility_total - 1e-12).all()


def test_local_devices_get_no_band_and_raw_devices_all_or_nothing():
    rng = np.random.default_rng(7)
    d = _fixed_split_instances(rng, 4, 3)
    d["kind"] = np.array([[LOCAL, RAW, PROGRESSIVE]] * 4)
    d["total_bits"][:, 1] = 1.204e6
    kw = dict(total_bw_hz=3e6, v_per_device=50.0 / 3, p_max=2.0, noise_psd=N0)
    for method in ("exact", "paper"):
        s = allocate_bandwidth(d, method=method, **kw)
        assert (s.bandwidth[:, 0] == 0).all() and (s.power[:, 0] == 0).all()
        assert ((s.fraction[:, 1] == 0) | (s.fraction[:, 1] >= 1 - 1e-9)).all()
