"""Exact per-slot allocators of LyMDO's drift-plus-penalty problem P2 for given partition points.

For fixed partition points P2 splits into three independent problems (``docs/assumptions/lymdo.md``):

* **P3** (eq. 19), one per UE: the UE CPU ``f`` minimising
  ``a f^2 + (V d / 2)(1/f + 1/(f - c))`` with ``a = Q kappa d lam tau / u_E``, ``c = lam d``, on
  ``(c, f_max]``.  The objective is strictly convex there and its derivative
  ``g'(f) = 2 a f - (V d / 2)(1/f^2 + 1/(f - c)^2)`` increases from ``-inf``, so the optimum is
  ``f_max`` when ``g'(f_max) <= 0`` and otherwise the unique root of ``g'`` in ``(c, f_max)``
  (a quintic: no closed form), found by bisection to the floating-point resolution of ``f``.
* **P4** (eqs. 20-23): edge CPU shares minimising ``V sum_n d_n / f_n`` under ``sum_n f_n <= F``:
  the square-root rule ``f_n = F sqrt(d_n) / sum_m sqrt(d_m)`` (exact).
* **P5** (eq. 24): bandwidth shares minimising ``sum_n w_n / R_n(alpha_n)`` with
  ``R_n = alpha W log2(1 + s_n / alpha)`` (concave in ``alpha``: the perspective of
  ``log2(1 + s)``) under ``sum_n alpha_n <= 1``.  At the optimum ``-g_n'(alpha_n) = nu`` for every
  UE with ``w_n > 0``; with ``x = s / alpha`` that reads ``phi(x_n) = nu s_n^2 W / (w_n ln 2)``,
  ``phi(x) = x^2 [ln(1+x) - x/(1+x)] / ln^2(1+x)`` increasing, and ``sum_n s_n / x_n = 1``.  The
  system is solved by Newton's method on ``(log x, log nu)`` with the Schur complement (a few
  iterations), with a nested bisection (provably convergent: both maps are monotone) where
  Newton has not converged.

Arrays carry the UEs on the last axis (``(..., N)``); scalars broadcast against the leading
shape.  Units are SI (cycles, cycles/s, bits, Hz, s, J).
"""

from __future__ import annotations

import numpy as np

from splitrl.core.checks import finite_checked

_LN2 = np.log(2.0)


def _md1_sojourn(cycles, lam, f):
    """Mean M/D/1 sojourn time in s of tasks of ``cycles`` cycles arriving at ``lam`` per s on a
    CPU of ``f`` cycles/s: ``(d/2)(1/f + 1/(f - lam d))`` (eq. 2 in an exact form); 0 where
    ``d = 0``, ``inf`` where the queue is unstable (``f <= lam d``)."""
    d = np.asarray(cycles, dtype=float)
    lam = np.asarray(lam, dtype=float)
    f = np.asarray(f, dtype=float)
    c = lam * d
    with np.errstate(divide="ignore", invalid="ignore"):
        t = 0.5 * d * (1.0 / f + 1.0 / (f - c))
    return np.where(d == 0, 0.0, np.where(f <= c, np.inf, t))


md1_sojourn = finite_checked("md1_sojourn", _md1_sojourn)


def ue_cpu_objective(Q, cycles, lam, f, *, V, kappa, tau=1.0, energy_unit=1.0):
    """P3's objective ``Q kappa f^2 d lam tau / u_E + V T_ue(f)`` per UE (for tests)."""
    d = np.asarray(cycles, dtype=float)
    a = np.asarray(Q, dtype=float) * kappa * d * np.asarray(lam, dtype=float) * tau / energy_unit
    return a * np.asarray(f, dtype=float) ** 2 + V * md1_sojourn(d, lam, f)


def _allocate_ue_cpu(Q, cycles, lam, *, V, kappa, f_max, tau=1.0, energy_unit=1.0, iters=80):
    """P3: every UE's CPU frequency in cycles/s, ``(..., N)``.

    ``Q``: energy queues (queue units), ``cycles``: per-task cycles on the UE ``d_ue``, ``lam``:
    arrival rates in tasks/s, ``V`` in 1/s, ``kappa`` in J s^2/cycle^3, ``f_max`` in cycles/s,
    ``tau`` the slot in s and ``energy_unit`` the energy queue's unit in J.  0 where ``d = 0``;
    raises ``ValueError`` when a UE with work cannot be stable (``f_max <= lam d``)."""
    Q, d, lam = (np.asarray(x, dtype=float) for x in (Q, cycles, lam))
    Q, d, lam, f_max = np.broadcast_arrays(Q, d, lam, np.asarray(f_max, dtype=float))
    c = lam * d
    active = d > 0
    if np.any(active & (f_max <= c)):
        raise ValueError("f_max: a UE with work cannot be stable (f_max <= lam * cycles, condition C7)")
    a = Q * kappa * d * lam * tau / energy_unit
    half_vd = 0.5 * V * d

    def slope(f):
        with np.errstate(divide="ignore", invalid="ignore"):
            return 2.0 * a * f - half_vd * (1.0 / f**2 + 1.0 / (f - c) ** 2)

    at_max = slope(f_max) <= 0
    lo, hi = c.copy(), f_max.copy()  # g' < 0 just above lo = c, g' > 0 at hi where the root is interior
    todo = active & ~at_max
    for _ in range(iters):
        if not todo.any():
            break
        mid = 0.5 * (lo + hi)
        up = slope(mid) > 0
        hi = np.where(todo & up, mid, hi)
        lo = np.where(todo & ~up, mid, lo)
        todo &= hi - lo > 4 * np.spacing(hi)
    return np.where(~active, 0.0, np.where(at_max, f_max, hi))


allocate_ue_cpu = finite_checked("allocate_ue_cpu", _allocate_ue_cpu, skip=("iters",))


def _allocate_edge_cpu_sqrt(cycles_edge, *, f_max):
    """P4: the edge CPU of every UE's VM in cycles/s, ``f_n = F sqrt(d_n) / sum_m sqrt(d_m)``
    (0 where ``d_n = 0``, all 0 when no UE has edge work)."""
    d = np.asarray(cycles_edge, dtype=float)
    if np.any(d < 0):
        raise ValueError(f"cycles_edge: expected values >= 0, got {d!r}")
    root = np.sqrt(d)
    total = root.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, root / total, 0.0)
    return np.asarray(f_max, dtype=float)[..., None] * share if np.ndim(f_max) else f_max * share


allocate_edge_cpu_sqrt = finite_checked("allocate_edge_cpu_sqrt", _allocate_edge_cpu_sqrt)


def snr_full_band(gain, *, power_w, bandwidth_hz, noise_psd):
    """``s = p h / (W N0)``: the SNR a UE would have with the whole band (eq. 24's notation)."""
    return np.asarray(power_w, dtype=float) * np.asarray(gain, dtype=float) / (bandwidth_hz * noise_psd)


def bandwidth_weight(Q, bits, lam, *, V, power_w, tau=1.0, energy_unit=1.0):
    """P5's weights ``w = (Q p lam tau / u_E + V) b`` in bit/s (``b``: bits sent per task)."""
    Q, b, lam = (np.asarray(x, dtype=float) for x in (Q, bits, lam))
    return (Q * np.asarray(power_w, dtype=float) * lam * tau / energy_unit + V) * b


def fdma_rate(alpha, snr, *, bandwidth_hz):
    """``R = alpha W log2(1 + s / alpha)`` in bit/s (0 where ``alpha = 0``)."""
    alpha = np.asarray(alpha, dtype=float)
    s = np.asarray(snr, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = alpha * bandwidth_hz * np.log1p(s / alpha) / _LN2
    return np.where(alpha > 0, r, 0.0)


def _log_phi_and_slope(u):
    """``log phi(x)`` and ``sigma = d log phi / d log x`` at ``x = e^u`` (series for tiny ``x``)."""
    x = np.exp(u)
    l1 = np.log1p(x)
    small = x < 1e-4
    n_big = l1 - x / (1.0 + x)
    n_small = x**2 / 2 - 2 * x**3 / 3 + 3 * x**4 / 4
    n = np.where(small, n_small, n_big)
    log_phi = 2.0 * u + np.log(n) - 2.0 * np.log(l1)
    sigma = 2.0 + x**2 / ((1.0 + x) ** 2 * n) - 2.0 * x / ((1.0 + x) * l1)
    return log_phi, sigma


def _bandwidth_bisection(k, s, active, iters=100):
    """Nested bisection for P5: outer on ``t = log nu`` (``sum alpha(t)`` decreases in ``t``),
    inner on every ``u_n = log x_n`` (``log phi`` increases in ``u``).  ``(B, N)`` arrays."""

    def alpha_of(t):
        lo = np.full(k.shape, -60.0)
        hi = np.full(k.shape, 60.0)
        target = t[:, None] + k
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            up = _log_phi_and_slope(mid)[0] > target
            hi = np.where(up, mid, hi)
            lo = np.where(up, lo, mid)
        return np.where(active, s * np.exp(-0.5 * (lo + hi)), 0.0)

    t_lo = np.full(k.shape[0], -200.0)
    t_hi = np.full(k.shape[0], 200.0)
    for _ in range(iters):
        t = 0.5 * (t_lo + t_hi)
        big = alpha_of(t).sum(axis=-1) > 1.0  # too much bandwidth asked for: nu must grow
        t_lo = np.where(big, t, t_lo)
        t_hi = np.where(big, t_hi, t)
    return alpha_of(0.5 * (t_lo + t_hi))


def _allocate_bandwidth(w, snr, *, bandwidth_hz, iters=40, tol=1e-12):
    """P5: every UE's bandwidth share ``alpha`` (``(..., N)``, summing to 1 over the UEs with
    ``w > 0`` and ``snr > 0``; 0 elsewhere, and all 0 when no UE sends).

    ``w``: weights ``(Q p lam tau / u_E + V) b`` in bit/s (:func:`bandwidth_weight`), ``snr``: the
    full-band SNRs ``p h / (W N0)`` (:func:`snr_full_band`), ``bandwidth_hz``: ``W``."""
    w = np.asarray(w, dtype=float)
    s = np.asarray(snr, dtype=float)
    w, s = np.broadcast_arrays(w, s)
    if np.any(w < 0) or np.any(s < 0):
        raise ValueError("w, snr: expected values >= 0")
    lead, n = w.shape[:-1], w.shape[-1]
    w2, s2 = w.reshape(-1, n), s.reshape(-1, n)
    active = (w2 > 0) & (s2 > 0)
    count = active.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(
            active, np.log(np.where(active, s2, 1.0) ** 2 * bandwidth_hz / (np.where(active, w2, 1.0) * _LN2)), 0.0
        )
        u = np.where(active, np.log(np.where(active, s2, 1.0) * np.maximum(count, 1)), 0.0)  # equal split
    log_phi, sigma = _log_phi_and_slope(u)
    t = np.where(count[:, 0] > 0, np.sum(np.where(active, log_phi - k, 0.0), axis=-1) / np.maximum(count[:, 0], 1), 0.0)
    done = count[:, 0] == 0
    for _ in range(iters):
        log_phi, sigma = _log_phi_and_slope(u)
        alpha = np.where(active, s2 * np.exp(-u), 0.0)
        F = np.where(active, log_phi - t[:, None] - k, 0.0)
        G = alpha.sum(axis=-1) - 1.0
        r = np.where(active, alpha / sigma, 0.0)
        rs = np.maximum(r.sum(axis=-1), 1e-300)
        dt = (G + (r * F).sum(axis=-1)) / rs
        du = np.where(active, (dt[:, None] - F) / sigma, 0.0)
        du = np.clip(du, -2.0, 2.0)
        u = np.where(done[:, None], u, u + du)
        t = np.where(done, t, t + dt)
        done |= (np.abs(du).max(axis=-1) < tol) & (np.abs(G) < tol)
        if done.all():
            break
    alpha = np.where(active, s2 * np.exp(-u), 0.0)
    if not done.all():  # Newton did not settle (not seen in practice): the provably convergent way
        rows = ~done
        alpha[rows] = _bandwidth_bisection(k[rows], s2[rows], active[rows])
    total = alpha.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(total > 0, alpha / total, 0.0)
    return alpha.reshape(*lead, n)


allocate_bandwidth = finite_checked("allocate_bandwidth", _allocate_bandwidth, skip=("iters", "tol"))
