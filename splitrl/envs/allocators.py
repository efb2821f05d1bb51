"""Exact per-slot Lyapunov drift-plus-penalty allocators (LyaPPO Problems 3, 4 and 5).

The paper solves these with CVX every slot; here each has an exact closed form, vectorised over
any leading batch dimensions (``Q`` has shape ``(..., N)``; scalars broadcast against ``(...)``).

Problems 3 and 4 share one structure.  The linear reward ``sum_n tau Q_n x_n`` depends on the
allocation ``x`` only through how a total ``S = sum_n x_n`` is spread, and for a given ``S`` it is
maximised by filling the per-queue caps ``Q_n / tau`` in decreasing order of ``Q_n`` (a
fractional knapsack).  The best linear reward ``g(S)`` is therefore concave and piecewise linear
with slopes ``Q_(1) >= Q_(2) >= ...`` on segments ``[B_{k-1}, B_k]`` (``B_k`` = cumulative caps),
and the problem reduces to the one-dimensional convex problem

    min_{0 <= S <= S_max}  -tau g(S) + weight * tau * cost(S)

with ``cost(S) = kappa S^3`` (local CPU) or the power ``p(S) = (b N0 / h)(2^{S/b} - 1)`` needed for
rate ``S`` (transmission).  On segment ``k`` the stationary point is ``root_k = cost'^{-1}(Q_(k) /
weight)``; because ``cost'`` increases and the slopes decrease, the optimum is

    S* = min(S_max, sum_k clip(root_k - B_{k-1}, 0, Q_(k) / tau)),

after which ``x`` is the greedy fill of ``S*``.  Problem 5 is the ``weight = 0`` linear case with
``S_max = f_max`` (Theorem 1).
"""

from __future__ import annotations

import numpy as np

_LN2 = np.log(2.0)


def _sorted_segments(Q, tau):
    """Queues sorted in decreasing order, their caps ``Q/tau`` and the segment starts."""
    Q = np.asarray(Q, dtype=float)
    order = np.argsort(-Q, axis=-1, kind="stable")
    Qs = np.take_along_axis(Q, order, axis=-1)
    caps = Qs / np.asarray(tau, dtype=float)[..., None]
    starts = np.cumsum(caps, axis=-1) - caps
    return order, Qs, caps, starts


def _fill(total, order, caps, starts):
    """Greedy fill of ``total`` over the sorted caps, scattered back to the original order."""
    xs = np.clip(total[..., None] - starts, 0.0, caps)
    x = np.empty_like(xs)
    np.put_along_axis(x, order, xs, axis=-1)
    return x


def _bcast(value, shape):
    return np.broadcast_to(np.asarray(value, dtype=float), shape)


def allocate_local_cpu(Q, *, tau, weight, kappa, f_max):
    """Problem 3: per-service CPU frequencies of one device (Hz).

    minimise ``sum_n -tau Q_n f_n + weight * tau * kappa * (sum_n f_n)^3``
    s.t. ``sum_n f_n <= f_max``, ``0 <= f_n <= Q_n / tau``.

    ``Q``: local backlogs in cycles, shape ``(..., N)``; ``weight`` in cycles^2/J.
    """
    Q = np.asarray(Q, dtype=float)
    lead = Q.shape[:-1]
    order, Qs, caps, starts = _sorted_segments(Q, _bcast(tau, lead))
    denom = 3.0 * _bcast(weight, lead) * _bcast(kappa, lead)
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.where(denom[..., None] > 0, np.sqrt(Qs / denom[..., None]), np.inf)
    total = np.clip(root - starts, 0.0, caps).sum(axis=-1)
    total = np.minimum(total, _bcast(f_max, lead))
    return _fill(total, order, caps, starts)


def allocate_transmission(Q, gain, *, tau, weight, bandwidth, noise_psd, p_max):
    """Problem 4: per-service rates (bit/s) and the device's transmit power (W).

    minimise ``sum_n -tau Q_n r_n + weight * tau * p``
    s.t. ``0 <= p <= p_max``, ``sum_n r_n <= b log2(1 + p h / (b N0))``, ``0 <= r_n <= Q_n / tau``.

    ``Q``: transmission backlogs in bits, shape ``(..., N)``; ``gain`` shape ``(...)``;
    ``weight`` in bits^2/J; ``noise_psd`` in W/Hz.  Returns ``(rate (..., N), power (...))``.
    """
    Q = np.asarray(Q, dtype=float)
    lead = Q.shape[:-1]
    gain = _bcast(gain, lead)
    b = _bcast(bandwidth, lead)
    n0 = _bcast(noise_psd, lead)
    w = _bcast(weight, lead)
    order, Qs, caps, starts = _sorted_segments(Q, _bcast(tau, lead))
    # Stationary rate on each segment: weight * p'(R) = Q_(k), p'(R) = N0 ln2 / h * 2^(R/b).
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        arg = Qs * gain[..., None] / (w[..., None] * n0[..., None] * _LN2)
        root = np.where(w[..., None] > 0, b[..., None] * np.log2(arg), np.inf)
        r_max = b * np.log2(1.0 + _bcast(p_max, lead) * gain / (b * n0))
    root = np.nan_to_num(root, nan=-np.inf)
    total = np.minimum(np.clip(root - starts, 0.0, caps).sum(axis=-1), r_max)
    with np.errstate(divide="ignore", invalid="ignore"):
        power = np.where(total > 0, b * n0 / gain * np.expm1(total * _LN2 / b), 0.0)
    power = np.minimum(power, _bcast(p_max, lead))
    return _fill(total, order, caps, starts), power


def allocate_edge_cpu(Q, *, tau, f_max):
    """Problem 5 / Theorem 1: edge CPU frequencies over all ``K = sum_m N_m`` edge queues (Hz).

    maximise ``sum_k tau Q_k f_k`` s.t. ``sum_k f_k <= f_max``, ``0 <= f_k <= Q_k / tau``:
    serve the largest backlogs first, the threshold queue gets the remainder.
    """
    Q = np.asarray(Q, dtype=float)
    lead = Q.shape[:-1]
    order, _, caps, starts = _sorted_segments(Q, _bcast(tau, lead))
    return _fill(_bcast(f_max, lead).copy(), order, caps, starts)
