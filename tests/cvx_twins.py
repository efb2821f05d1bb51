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
