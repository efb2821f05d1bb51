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

from splitrl.core.checks import finite_checked

_LN2 = np.log(2.0)


def _sorted_segments(Q, tau):
    """Queues sorted in decreasing order, their caps ``Q/tau`` and the segment starts.

    Works on the leading dimensions flattened to one (``(B, N)``) with plain fancy indexing,
    which is several times faster than ``take_along_axis`` on the small arrays of an env step.
    """
    Q = np.asarray(Q, dtype=float)
    lead, n = Q.shape[:-1], Q.shape[-1]
    Qf = Q.reshape(-1, n)
    rows = np.arange(Qf.shape[0])[:, None]
    order = np.argsort(-Qf, axis=-1, kind="stable")
    Qs = Qf[rows, order]
    tau = np.asarray(tau, dtype=float)
    caps = Qs / (tau.reshape(-1, 1) if tau.ndim else tau)
    starts = np.cumsum(caps, axis=-1) - caps
    return (lead, rows, order), Qs, caps, starts


def _bcast_lead(value, Q):
    """A scalar parameter as is; an array parameter broadcast to ``Q``'s leading shape."""
    value = np.asarray(value, dtype=float)
    if value.ndim == 0:
        return value
    return np.broadcast_to(value, np.shape(Q)[:-1])


def _flat(value):
    """A scalar stays a scalar; a per-batch array becomes a ``(B, 1)`` column."""
    value = np.asarray(value, dtype=float)
    return value if value.ndim == 0 else value.reshape(-1, 1)


def _fill(total, index, caps, starts):
    """Greedy fill of ``total`` (``(B, 1)`` or scalar) over the sorted caps, back in original order."""
    lead, rows, order = index
    xs = np.minimum(np.maximum(total - starts, 0.0), caps)
    x = np.empty_like(xs)
    x[rows, order] = xs
    return x.reshape(lead + (xs.shape[-1],))


def _allocate_local_cpu(Q, *, tau, weight, kappa, f_max):
    """Problem 3: per-service CPU frequencies of one device (Hz).

    minimise ``sum_n -tau Q_n f_n + weight * tau * kappa * (sum_n f_n)^3``
    s.t. ``sum_n f_n <= f_max``, ``0 <= f_n <= Q_n / tau``.

    ``Q``: local backlogs in cycles, shape ``(..., N)``; ``weight`` in cycles^2/J.
    """
    index, Qs, caps, starts = _sorted_segments(Q, _bcast_lead(tau, Q))
    denom = 3.0 * _flat(_bcast_lead(weight, Q)) * _flat(_bcast_lead(kappa, Q))
    # root = sqrt(Q / denom), +inf where the energy price is zero.
    root = np.sqrt(np.divide(Qs, denom, out=np.full(Qs.shape, np.inf), where=denom > 0))
    total = np.minimum(np.maximum(root - starts, 0.0), caps).sum(axis=-1, keepdims=True)
    total = np.minimum(total, _flat(_bcast_lead(f_max, Q)))
    return _fill(total, index, caps, starts)


allocate_local_cpu = finite_checked("allocate_local_cpu", _allocate_local_cpu)


def _allocate_transmission(Q, gain, *, tau, weight, bandwidth, noise_psd, p_max):
    """Problem 4: per-service rates (bit/s) and the device's transmit power (W).

    minimise ``sum_n -tau Q_n r_n + weight * tau * p``
    s.t. ``0 <= p <= p_max``, ``sum_n r_n <= b log2(1 + p h / (b N0))``, ``0 <= r_n <= Q_n / tau``.

    ``Q``: transmission backlogs in bits, shape ``(..., N)``; ``gain`` shape ``(...)``;
    ``weight`` in bits^2/J; ``noise_psd`` in W/Hz.  Returns ``(rate (..., N), power (...))``.
    """
    Q = np.asarray(Q, dtype=float)
    gain = _flat(_bcast_lead(gain, Q))
    b = _flat(_bcast_lead(bandwidth, Q))
    n0 = _flat(_bcast_lead(noise_psd, Q))
    w = _flat(_bcast_lead(weight, Q))
    pmax = _flat(_bcast_lead(p_max, Q))
    index, Qs, caps, starts = _sorted_segments(Q, _bcast_lead(tau, Q))
    # Stationary rate on each segment: weight * p'(R) = Q_(k), p'(R) = N0 ln2 / h * 2^(R/b),
    # i.e. root = b log2(Q h / (weight N0 ln2)); +inf for a free power, -inf for Q h = 0.
    price = w * n0 * _LN2
    arg = np.divide(Qs * gain, price, out=np.full(Qs.shape, np.inf), where=price > 0)
    root = b * np.log2(arg, out=np.full(Qs.shape, -np.inf), where=arg > 0)
    r_max = b * np.log2(1.0 + pmax * gain / (b * n0))
    total = np.minimum(np.minimum(np.maximum(root - starts, 0.0), caps).sum(axis=-1, keepdims=True), r_max)
    # Power that achieves the total rate (0 when nothing is sent, including a zero gain).
    need = b * n0 * np.expm1(total * _LN2 / b)
    power = np.minimum(np.divide(need, gain, out=np.zeros(need.shape), where=total > 0), pmax)
    return _fill(total, index, caps, starts), power.reshape(Q.shape[:-1])


allocate_transmission = finite_checked("allocate_transmission", _allocate_transmission)


def _allocate_edge_cpu(Q, *, tau, f_max):
    """Problem 5 / Theorem 1: edge CPU frequencies over all ``K = sum_m N_m`` edge queues (Hz).

    maximise ``sum_k tau Q_k f_k`` s.t. ``sum_k f_k <= f_max``, ``0 <= f_k <= Q_k / tau``:
    serve the largest backlogs first, the threshold queue gets the remainder.
    """
    index, _, caps, starts = _sorted_segments(Q, _bcast_lead(tau, Q))
    return _fill(_flat(_bcast_lead(f_max, Q)), index, caps, starts)


allocate_edge_cpu = finite_checked("allocate_edge_cpu", _allocate_edge_cpu)
