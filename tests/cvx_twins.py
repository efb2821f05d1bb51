"""cvxpy twins of the closed-form allocators: the reference oracle used only by tests and benchmarks.

Each twin builds a *parametrised* (DPP) problem once per queue count ``N`` and re-solves it with new
parameter values, in scaled units (allocations divided by a natural scale, objective divided by
``tau * scale * max Q``) so that the conic solver works at O(1) magnitudes whatever the inputs.
Objectives are reported in the original SI units.
"""

from __future__ import annotations

from functools import cache

import cvxpy as cp
import numpy as np

SOLVER_OPTS = dict(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10, max_iter=500)


def _solve(prob):
    """Solve tightly; when Clarabel stalls at the tight tolerances, fall back to its defaults."""
    for opts in (SOLVER_OPTS, dict(solver=cp.CLARABEL), dict(solver=cp.SCS, eps=1e-10, max_iters=200_000)):
        try:
            prob.solve(**opts)
            break
        except cp.error.SolverError:
            continue
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"cvxpy reference failed: {prob.status}")


def _project(x, caps, total):
    """Make a solver's answer exactly feasible (clip to the caps, scale into the sum budget), so
    that its objective is a valid upper bound on the optimum the closed forms are held to."""
    x = np.clip(x, 0.0, caps)
    ssum = x.sum()
    return x * (total / ssum) if ssum > total else x


def local_objective(Q, f, *, tau, weight, kappa):
    return float(-tau * np.dot(Q, f) + weight * tau * kappa * np.sum(f) ** 3)


def tx_objective(Q, r, p, *, tau, weight):
    return float(-tau * np.dot(Q, r) + weight * tau * p)


def edge_objective(Q, f, *, tau):
    return float(-tau * np.dot(Q, f))


@cache
def _local_problem(n):
    u = cp.Variable(n, nonneg=True)
    a = cp.Parameter(n, nonneg=True)
    ub = cp.Parameter(n, nonneg=True)
    c = cp.Parameter(nonneg=True)
    cap = cp.Parameter(nonneg=True)
    prob = cp.Problem(cp.Minimize(-a @ u + c * cp.power(cp.sum(u), 3)), [u <= ub, cp.sum(u) <= cap])
    return prob, u, (a, ub, c, cap)


def cvx_local_cpu(Q, *, tau, weight, kappa, f_max):
    Q = np.asarray(Q, dtype=float)
    qmax = Q.max()
    if qmax <= 0:
        return np.zeros_like(Q), 0.0
    caps = Q / tau
    with np.errstate(divide="ignore"):
        root = np.sqrt(qmax / (3 * weight * kappa)) if weight * kappa > 0 else np.inf
    s = min(f_max, caps.sum(), root)
    prob, u, (a, ub, c, cap) = _local_problem(len(Q))
    # ub is tightened by the (implied) cap on the sum: same feasible set, better conditioning.
    a.value, ub.value = Q / qmax, np.minimum(caps, f_max) / s
    c.value = weight * kappa * s**2 / qmax
    cap.value = f_max / s
    _solve(prob)
    f = _project(u.value * s, np.minimum(caps, f_max), f_max)
    return f, local_objective(Q, f, tau=tau, weight=weight, kappa=kappa)


@cache
def _tx_problem(n):
    v = cp.Variable(n, nonneg=True)  # rates in units of min(R_max, sum of caps)
    y = cp.Variable(nonneg=True)  # SNR in units of zcap
    t = cp.Variable()  # ln(1 + SNR): keeps the problem DPP (a parameter may not scale the log)
    a = cp.Parameter(n, nonneg=True)
    ub = cp.Parameter(n, nonneg=True)
    cz = cp.Parameter(nonneg=True)  # power price of y
    zcap = cp.Parameter(nonneg=True)
    bs = cp.Parameter(nonneg=True)  # bandwidth / (scale * ln 2)
    cons = [v <= ub, y <= 1, t <= cp.log(1 + zcap * y), cp.sum(v) <= bs * t]
    prob = cp.Problem(cp.Minimize(-a @ v + cz * y), cons)
    return prob, (v, y), (a, ub, cz, zcap, bs)


def cvx_transmission(Q, gain, *, tau, weight, bandwidth, noise_psd, p_max):
    Q = np.asarray(Q, dtype=float)
    qmax = Q.max()
    if qmax <= 0 or gain <= 0:
        return np.zeros_like(Q), 0.0, 0.0
    noise = bandwidth * noise_psd
    r_max = bandwidth * np.log2(1 + p_max * gain / noise)
    s = min(r_max, Q.sum() / tau)  # rates in units of s
    if s <= 0:
        return np.zeros_like(Q), 0.0, 0.0
    prob, (v, y), (a, ub, cz, zcap, bs) = _tx_problem(len(Q))
    a.value, ub.value = Q / qmax, np.minimum(Q / tau, r_max) / s
    c = weight * noise / (gain * s * qmax)  # price of one unit of SNR
    # An SNR whose price exceeds the largest possible reward a.ub is never optimal (z = 0 beats
    # it), so capping z there keeps the optimum and the problem well scaled.
    z_cap = p_max * gain / noise
    if c > 0:
        z_cap = min(z_cap, float(a.value @ ub.value) / c)
    zcap.value, cz.value = z_cap, c * z_cap
    bs.value = bandwidth / s / np.log(2.0)
    _solve(prob)
    p = float(np.clip(y.value, 0, 1)) * z_cap * noise / gain
    r = _project(v.value * s, Q / tau, bandwidth * np.log2(1 + p * gain / noise))
    return r, p, tx_objective(Q, r, p, tau=tau, weight=weight)


@cache
def _edge_problem(n):
    u = cp.Variable(n, nonneg=True)
    a = cp.Parameter(n, nonneg=True)
    ub = cp.Parameter(n, nonneg=True)
    cap = cp.Parameter(nonneg=True)
    prob = cp.Problem(cp.Maximize(a @ u), [u <= ub, cp.sum(u) <= cap])
    return prob, u, (a, ub, cap)


def cvx_edge_cpu(Q, *, tau, f_max):
    Q = np.asarray(Q, dtype=float)
    qmax = Q.max()
    if qmax <= 0:
        return np.zeros_like(Q), 0.0
    s = min(f_max, Q.sum() / tau)
    prob, u, (a, ub, cap) = _edge_problem(len(Q))
    a.value, ub.value, cap.value = Q / qmax, np.minimum(Q / tau, f_max) / s, f_max / s
    _solve(prob)
    f = _project(u.value * s, Q / tau, f_max)
    return f, edge_objective(Q, f, tau=tau)


# ---- LyMDO (P3, P4, P5) ------------------------------------------------------------------------------
@cache
def _ue_cpu_problem():
    f = cp.Variable()  # GHz
    a = cp.Parameter(nonneg=True)
    k = cp.Parameter(nonneg=True)
    c = cp.Parameter(nonneg=True)
    fmax = cp.Parameter(nonneg=True)
    slack = cp.Variable()  # f - c, a variable of its own so that the problem stays DPP (k * inv_pos(f - c) is not)
    prob = cp.Problem(
        cp.Minimize(a * cp.square(f) + k * (cp.inv_pos(f) + cp.inv_pos(slack))),
        [f <= fmax, slack == f - c, slack >= 0],
    )
    return prob, f, (a, k, c, fmax)


def cvx_ue_cpu(Q, d, lam, *, V, kappa, f_max, tau=1.0, energy_unit=1.0):
    """P3 for one UE with ``d > 0``: the optimal CPU in cycles/s (solved in GHz)."""
    prob, f, (a, k, c, fmax) = _ue_cpu_problem()
    g = 1e9
    a.value = Q * kappa * d * lam * tau / energy_unit * g**2
    k.value = V * d / 2 / g
    c.value = lam * d / g
    fmax.value = f_max / g
    _solve(prob)
    return float(np.clip(f.value, c.value * (1 + 1e-12), fmax.value)) * g


def cvx_edge_cpu_sqrt(d, *, f_max):
    """P4 over the UEs with ``d > 0``: shares in cycles/s and the objective ``sum d / f``."""
    d = np.asarray(d, dtype=float)
    on = d > 0
    if not on.any():
        return np.zeros_like(d), 0.0
    dn = d[on] / d[on].max()
    f = cp.Variable(int(on.sum()), nonneg=True)
    prob = cp.Problem(cp.Minimize(cp.sum(cp.multiply(dn, cp.inv_pos(f)))), [cp.sum(f) <= 1.0])
    _solve(prob)
    out = np.zeros_like(d)
    out[on] = _project(f.value, np.ones(len(dn)), 1.0) * f_max
    return out, float(np.sum(d[on] / out[on]))


def cvx_bandwidth(w, s, *, bandwidth_hz):
    """P5 over the UEs with ``w > 0``: shares and the objective ``sum w / R`` (``R`` in bit/s)."""
    w, s = np.asarray(w, dtype=float), np.asarray(s, dtype=float)
    on = (w > 0) & (s > 0)
    if not on.any():
        return np.zeros_like(w), 0.0
    wn, sn = w[on] / w[on].max(), s[on]
    a = cp.Variable(int(on.sum()), nonneg=True)
    rate = -cp.rel_entr(a, a + sn)  # alpha ln(1 + s / alpha), concave
    prob = cp.Problem(cp.Minimize(cp.sum(cp.multiply(wn, cp.inv_pos(rate)))), [cp.sum(a) <= 1.0])
    _solve(prob)
    out = np.zeros_like(w)
    out[on] = _project(a.value, np.ones(len(wn)), 1.0)
    with np.errstate(divide="ignore"):
        rates = out[on] * bandwidth_hz * np.log1p(sn / out[on]) / np.log(2.0)
    return out, float(np.sum(w[on] / rates))


# ---- ENACHI (Lemma 2, eq. 25, the fixed-split problem 17) ---------------------------------------------
def cvx_reference_power(Q, bw, *, gain, window_s, total_bits, a, b, c, v, p_max, noise_psd):
    """Lemma 2's problem with the unclipped surrogate: max v (a - b / (min(x, 1) + c)) - Q T p."""
    alpha = bw * window_s / total_bits
    beta = gain / (bw * noise_psd)
    scale = p_max  # p in units of p_max
    p = cp.Variable(nonneg=True)
    x = cp.minimum(alpha * cp.log(1 + beta * scale * p) / np.log(2), 1.0)
    obj = v * (a - b * cp.inv_pos(x + c)) - Q * window_s * scale * p
    prob = cp.Problem(cp.Maximize(obj), [p <= 1.0])
    _solve(prob)
    return float(np.clip(p.value, 0.0, 1.0)) * scale


def cvx_slot_power(Z, gain, bw, *, u_inner, map_bits, slot_s, noise_psd, p_max):
    """P2.1 (24): max U (w tau / (b H W)) log2(1 + p g / (w N0)) - Z p, 0 <= p <= p_max."""
    p = cp.Variable(nonneg=True)
    coef = u_inner * bw * slot_s / map_bits / np.log(2)
    snr = gain * p_max / (bw * noise_psd)
    prob = cp.Problem(cp.Maximize(coef * cp.log(1 + snr * p) - Z * p_max * p), [p <= 1.0])
    _solve(prob)
    return float(np.clip(p.value, 0.0, 1.0)) * p_max


def cvx_fixed_split(Q, *, gain, window_s, total_bits, a, b, c, e_local, v, p_max, noise_psd, total_bw):
    """(17) for progressive devices with a fixed split, jointly in (w, p), unclipped surrogate:
    x_n = T_n / (S_n ln 2) w_n log(1 + g_n p_n / (w_n N0)) (a perspective: jointly concave).
    Returns the objective (SI) and the bands (Hz)."""
    n = len(Q)
    w = cp.Variable(n, nonneg=True)  # MHz
    p = cp.Variable(n, nonneg=True)  # W
    mhz = 1e6
    s = gain / (noise_psd * mhz)  # snr per W per MHz of band
    x = cp.multiply(window_s * mhz / (total_bits * np.log(2)), -cp.rel_entr(w, w + cp.multiply(s, p)))
    acc = a - cp.multiply(b, cp.inv_pos(cp.minimum(x, 1.0) + c))
    obj = cp.sum(v * acc - cp.multiply(Q, e_local + cp.multiply(p, window_s)))
    prob = cp.Problem(cp.Maximize(obj), [cp.sum(w) <= total_bw / mhz, p <= p_max])
    _solve(prob)
    return float(prob.value), np.asarray(w.value) * mhz, np.asarray(p.value)
