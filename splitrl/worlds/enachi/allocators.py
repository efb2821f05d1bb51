"""ENACHI's allocators (design notes section 2): exact closed forms, vectorised numpy over leading
batch dimensions with devices on the last axis, SI units.

Stage I, per frame, for a fixed split per device:

* :func:`reference_power` -- Lemma 2 (18): the power maximising ``v A(x(p)) - Q T p`` with the
  Lambert W function, computed in log space (``wrightomega``), clipped to ``p_max`` and to the
  power that delivers every map; compared with ``p = 0`` where the surrogate is clipped at 0.
* :func:`best_power` -- the same for every kind of split: progressive (Lemma 2), raw input
  (all-or-nothing: ``p_max`` if its ergodic rate delivers it in the window and it is worth the
  energy, :func:`raw_plan`) and local (0).
* :func:`stage1_utility` -- (17)/(19): ``U_n = v A_n - Q_n (E_loc_n + p_n T_n)`` per device.
* :func:`allocate_bandwidth` -- the paper's Algorithm 1 (unit-bandwidth reward and proportional
  reallocation, best iterate kept) or ``exact``: the concave fixed-split problem by dual
  bisection, raw-input devices enumerated on and off.

Stage II, per slot:

* :func:`slot_power` -- (25), the KKT power of the per-slot drift-plus-penalty, capped at the
  power that sends exactly the bits still missing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.special import wrightomega

from splitrl.core.checks import finite_checked, require_finite

from .accuracy import surrogate
from .physics import LN2, planned_fraction, snr_coefficient

#: kinds of split
RAW, PROGRESSIVE, LOCAL = 0, 1, 2


def _b(*arrays):
    return np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in arrays))


def _cap_log(alpha, beta, p_max):
    """``log(1 + beta p)`` at ``min(p_max, p_full)`` with ``p_full = (2^{1/alpha} - 1) / beta``
    (the power that delivers every map), never forming ``2^{1/alpha}``."""
    with np.errstate(divide="ignore"):
        full = np.where(alpha > 0, LN2 / alpha, np.inf)
    return np.minimum(full, np.log1p(p_max * beta))


def _reference_power(
    Q, bandwidth, *, gain, window_s, total_bits, a, b, c, v_per_device, p_max, noise_psd, clip: bool = True
):
    """Lemma 2: ``argmax_{0 <= p <= p_max} v A(x(p)) - Q T p`` with ``A`` eq. (14) and ``x`` eq. (15).

    ``v_per_device`` is ``V / N``; all arguments broadcast.  0 where the band or the window is 0.
    ``clip=False`` maximises the unclipped (concave) ``a - b / (x + c)``, which may be negative."""
    Q, bw, g, T, S, a, b, c = _b(Q, bandwidth, gain, window_s, total_bits, a, b, c)
    T = np.maximum(T, 0.0)
    alpha = np.where(S > 0, bw * T / np.where(S > 0, S, 1.0), 0.0)
    beta = snr_coefficient(bw, g, noise_psd)
    usable = (alpha > 0) & (beta > 0)
    cap = np.where(usable, _cap_log(alpha, beta, p_max), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_k0 = np.log(v_per_device) + np.log(b) + np.log(alpha) + np.log(beta) - np.log(Q) - np.log(T) - np.log(LN2)
        log_z = np.log(LN2) - np.log(2 * alpha) + 0.5 * log_k0 + c * LN2 / (2 * alpha)
        u = np.real(wrightomega(np.where(usable & (Q > 0), log_z, 0.0)))
        ylog = np.where(Q > 0, 2 * u - c * LN2 / alpha, np.inf)  # log(1 + beta p_stationary)
        p = np.where(usable, np.expm1(np.clip(ylog, 0.0, cap)) / np.where(beta > 0, beta, 1.0), 0.0)
    p = np.minimum(p, p_max)  # expm1(log1p(p_max beta)) / beta may round above p_max
    if not clip:
        return p

    # the surrogate is clipped at 0: where it is 0 at the stationary point, sending nothing is better
    def value(power):
        x = planned_fraction(power, bw, gain=g, window_s=T, total_bits=S, noise_psd=noise_psd)
        return v_per_device * surrogate(x, a, b, c) - Q * T * power

    return np.where(value(p) > value(np.zeros_like(p)), p, 0.0)


reference_power = finite_checked("reference_power", _reference_power, skip=("clip",))


def ergodic_rate(power, bandwidth, *, gain, noise_psd):
    """``w E[log2(1 + p g h / (w N_0))]`` [bit/s] over Rayleigh fading ``h ~ Exp(1)``:
    ``w e^{1/rho} E_1(1/rho) / ln 2`` with ``rho = p g / (w N_0)`` (asymptotic series where
    ``e^{1/rho}`` would overflow)."""
    from scipy.special import exp1

    bw, p = _b(bandwidth, power)
    rho = np.asarray(power, dtype=float) * snr_coefficient(bw, gain, noise_psd)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = np.where(rho > 0, 1.0 / rho, np.inf)
        small = z <= 50.0
        zs = np.where(small, z, 1.0)
        scaled = np.where(small, np.exp(zs) * exp1(zs), (1 - 1 / z + 2 / z**2 - 6 / z**3) / z)
        return np.where(rho > 0, bw * scaled / LN2, 0.0)


def raw_plan(bandwidth, *, gain, window_s, total_bits, noise_psd, p_max, where=None):
    """The raw input (all or nothing) sent at ``p_max`` from the window's start: whether its
    ergodic rate delivers it in the window, and the expected time it takes [s].  ``where``
    (bool, broadcast): compute only there (elsewhere: not deliverable)."""
    bw, g, T, S, pm = _b(bandwidth, gain, window_s, total_bits, p_max)
    T = np.maximum(T, 0.0)
    if where is None:
        rate = ergodic_rate(pm, bw, gain=g, noise_psd=noise_psd)
    else:
        mask = np.broadcast_to(np.asarray(where, dtype=bool), bw.shape)
        rate = np.zeros(bw.shape)
        rate[mask] = ergodic_rate(pm[mask], bw[mask], gain=g[mask], noise_psd=noise_psd)
    total_bits = S
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(rate > 0, np.asarray(total_bits, dtype=float) / rate, np.inf)
    return (need <= T) & (T > 0), np.minimum(need, T)


def best_power(
    Q,
    bandwidth,
    *,
    kind,
    gain,
    window_s,
    total_bits,
    a,
    b,
    c,
    a_max,
    v_per_device,
    p_max,
    noise_psd,
    clip=True,
    raw=None,
):
    """The Stage I power per device for its kind of split (``RAW``, ``PROGRESSIVE``, ``LOCAL``):
    Lemma 2 for progressive splits; ``p_max`` for the raw input when its ergodic rate delivers it
    in the window and the accuracy is worth the expected energy (else 0); 0 for a local run.
    ``raw``: :func:`raw_plan` at ``p_max``, if already known."""
    kind = np.asarray(kind)
    prog = _reference_power(  # inputs checked at the public boundary (allocate_bandwidth)
        Q,
        bandwidth,
        gain=gain,
        window_s=window_s,
        total_bits=total_bits,
        a=a,
        b=b,
        c=c,
        v_per_device=v_per_device,
        p_max=p_max,
        noise_psd=noise_psd,
        clip=clip,
    )
    if raw is None:
        raw = raw_plan(
            bandwidth,
            gain=gain,
            window_s=window_s,
            total_bits=total_bits,
            noise_psd=noise_psd,
            p_max=p_max,
            where=kind == RAW,
        )
    ok, need = raw
    worth = ok & (v_per_device * np.asarray(a_max) > np.asarray(Q, dtype=float) * p_max * need)
    raw = np.where(worth, float(p_max), 0.0)
    return np.where(kind == PROGRESSIVE, prog, np.where(kind == RAW, raw, 0.0))


def stage1_utility(
    power,
    bandwidth,
    *,
    Q,
    e_local,
    kind,
    gain,
    window_s,
    total_bits,
    a,
    b,
    c,
    a_max,
    local_ok,
    v_per_device,
    noise_psd,
    clip=True,
    raw=None,
):
    """(19) per device, ``v A - Q (E_loc + p T)``: ``A`` is the surrogate of the planned fraction
    (progressive; unclipped with ``clip=False``), ``a_max`` if the whole input arrives (raw: sent
    at ``power`` for its expected time, by the ergodic rate) or if the local run meets the
    deadline (``local_ok``, local); 0 where the window is not positive (the split is infeasible).
    ``raw``: :func:`raw_plan` at ``power`` (the raw devices' power), if already known."""
    kind = np.asarray(kind)
    T = np.asarray(window_s, dtype=float)
    power = np.asarray(power, dtype=float)
    x = planned_fraction(power, bandwidth, gain=gain, window_s=T, total_bits=total_bits, noise_psd=noise_psd)
    prog = surrogate(x, a, b, c) if clip else np.asarray(a) - np.asarray(b) / (x + np.asarray(c))
    if raw is None:
        raw = raw_plan(
            bandwidth,
            gain=gain,
            window_s=T,
            total_bits=total_bits,
            noise_psd=noise_psd,
            p_max=np.where(power > 0, power, 1.0),
            where=kind == RAW,
        )
    ok, need = raw
    raw_on = ok & (power > 0)
    acc = np.where(
        kind == PROGRESSIVE,
        prog,
        np.where(kind == RAW, np.where(raw_on, a_max, 0.0), np.where(local_ok, a_max, 0.0)),
    )
    acc = np.where((kind != LOCAL) & (T <= 0), 0.0, acc)
    spent = np.where(
        kind == LOCAL, 0.0, np.where(kind == RAW, np.where(raw_on, power * need, 0.0), power * np.maximum(T, 0.0))
    )
    return v_per_device * acc - np.asarray(Q, dtype=float) * (np.asarray(e_local, dtype=float) + spent)


@dataclass
class Stage1:
    """A Stage I allocation: per device ``(..., N)`` and the total utility ``(...)``."""

    bandwidth: np.ndarray
    power: np.ndarray
    fraction: np.ndarray
    utility: np.ndarray
    utility_total: np.ndarray
    iterations: np.ndarray


def _device_fields(d: dict) -> dict:
    keys = ("Q", "kind", "gain", "window_s", "total_bits", "a", "b", "c", "a_max", "e_local", "local_ok")
    missing = [k for k in keys if k not in d]
    if missing:
        raise TypeError(f"allocate_bandwidth: missing device fields {missing}")
    return {k: np.asarray(d[k]) for k in keys}


def _evaluate(bw, f, *, v_per_device, p_max, noise_psd, clip=True):
    """Best power, fraction and utility of every device at bandwidths ``bw``."""
    common = dict(gain=f["gain"], window_s=f["window_s"], total_bits=f["total_bits"], noise_psd=noise_psd)
    raw = raw_plan(bw, p_max=p_max, where=f["kind"] == RAW, **common)  # once: the raw devices go at p_max
    p = best_power(
        f["Q"],
        bw,
        kind=f["kind"],
        a=f["a"],
        b=f["b"],
        c=f["c"],
        a_max=f["a_max"],
        v_per_device=v_per_device,
        p_max=p_max,
        clip=clip,
        raw=raw,
        **common,
    )
    u = stage1_utility(
        p,
        bw,
        Q=f["Q"],
        e_local=f["e_local"],
        kind=f["kind"],
        a=f["a"],
        b=f["b"],
        c=f["c"],
        a_max=f["a_max"],
        local_ok=f["local_ok"],
        v_per_device=v_per_device,
        clip=clip,
        raw=raw,
        **common,
    )
    x = planned_fraction(p, bw, **common)
    x = np.where(f["kind"] == RAW, (raw[0] & (p > 0)).astype(float), x)
    return p, x, u


def _evaluate_with_step(bw, dw, f, **kw):
    """:func:`_evaluate` at ``bw`` and the utilities at ``bw + dw`` (Algorithm 1's unit-bandwidth
    reward), in one call over a stacked leading axis: elementwise, so the same numbers as two calls
    at half the per-call overhead that dominates small batches."""
    p, x, u = _evaluate(np.stack([bw, bw + dw]), {k: v[None] for k, v in f.items()}, **kw)
    return (p[0], x[0], u[0]), u[1]


def allocate_bandwidth(
    devices: dict,
    *,
    total_bw_hz: float,
    v_per_device: float,
    p_max: float,
    noise_psd: float,
    method: str = "paper",
    max_iter: int = 50,
    tol: float = 1e-6,
    delta_bw_hz: float | None = None,
) -> Stage1:
    """Bandwidth and power for a fixed split (``devices``: arrays ``(..., N)`` named ``Q``, ``kind``,
    ``gain`` (the frame's average gain), ``window_s``, ``total_bits``, ``a``, ``b``, ``c``,
    ``a_max``, ``e_local``, ``local_ok``).

    ``paper``: Algorithm 1 -- start at ``B / N`` over the ``N`` devices that transmit; per
    iteration the unit-bandwidth reward (20)
    ``R_n = (U*_n(w + dw) - U*_n(w)) / dw`` and the proportional reallocation (21)
    ``w = B R+ / sum R+``, until the total utility changes by at most ``tol`` relatively or
    ``max_iter``; the best iterate is returned (never worse than the equal split).
    ``exact``: the maximum of ``sum U*_n(w_n)`` s.t. ``sum w <= B`` (concave for progressive devices
    under the PSD noise model) by bisection on the multiplier, each transmitting device enumerated
    on and off (the clipped surrogate and the raw input make the problem concave only per case)."""
    f = _device_fields(devices)
    require_finite(
        "allocate_bandwidth",
        **{f"devices[{k!r}]": v for k, v in f.items()},
        total_bw_hz=total_bw_hz,
        v_per_device=v_per_device,
        p_max=p_max,
        noise_psd=noise_psd,
    )
    shape = np.broadcast_shapes(*(v.shape for v in f.values()))
    f = {k: np.broadcast_to(v, shape) for k, v in f.items()}
    kw = dict(v_per_device=v_per_device, p_max=p_max, noise_psd=noise_psd)
    if method == "exact":
        return _exact(f, total_bw_hz, **kw)
    if method != "paper":
        raise ValueError(f"method must be 'paper' or 'exact', got {method!r}")
    dw = delta_bw_hz if delta_bw_hz is not None else 1e-3 * total_bw_hz
    # the equal split over the devices that transmit (a local device's band would be wasted)
    sends = (f["kind"] != LOCAL) & (f["window_s"] > 0)
    count = sends.sum(-1, keepdims=True)
    bw = np.where(sends, total_bw_hz / np.maximum(count, 1), 0.0)
    (p, x, u), u_up = _evaluate_with_step(bw, dw, f, **kw)
    best = Stage1(bw, p, x, u, u.sum(-1), np.zeros(shape[:-1], dtype=np.int64))
    prev = best.utility_total.copy()
    done = np.zeros(shape[:-1], dtype=bool)
    for i in range(max_iter):
        reward = np.maximum((u_up - u) / dw, 0.0)
        total = reward.sum(-1, keepdims=True)
        stuck = total[..., 0] <= 0
        with np.errstate(invalid="ignore", divide="ignore"):
            new_bw = np.where(total > 0, total_bw_hz * reward / np.where(total > 0, total, 1.0), bw)
        active = ~(done | stuck)
        bw = np.where(active[..., None], new_bw, bw)
        (p, x, u), u_up = _evaluate_with_step(bw, dw, f, **kw)
        tot = u.sum(-1)
        better = active & (tot > best.utility_total)
        for name, val in (("bandwidth", bw), ("power", p), ("fraction", x), ("utility", u)):
            setattr(best, name, np.where(better[..., None], val, getattr(best, name)))
        best.utility_total = np.where(better, tot, best.utility_total)
        best.iterations = np.where(active, i + 1, best.iterations)
        done |= stuck | (active & (np.abs(tot - prev) <= tol * np.abs(prev)))
        prev = np.where(active, tot, prev)
        if done.all():
            break
    return best


def _argmax_concave(fn, lo, hi, iters=90):
    """Golden-section maximiser of concave ``fn`` on ``[lo, hi]`` elementwise."""
    r = (np.sqrt(5.0) - 1.0) / 2.0
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    x1, x2 = hi - r * (hi - lo), lo + r * (hi - lo)
    f1, f2 = fn(x1), fn(x2)
    for _ in range(iters):
        left = f1 >= f2  # the maximum is in [lo, x2]
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
        x1n = np.where(left, hi - r * (hi - lo), x2)
        x2n = np.where(left, x1, lo + r * (hi - lo))
        x1, x2 = x1n, x2n
        f1 = fn(x1)
        f2 = fn(x2)
    return (lo + hi) / 2


def _exact(f: dict, total_bw: float, *, v_per_device, p_max, noise_psd) -> Stage1:
    """Every device's utility at its best power is ``max(concave part, off value)``: the unclipped
    surrogate's (concave under the PSD noise model) or the constant of sending nothing, and for a
    raw-input device ``v a_max - Q T p_full(w)`` (concave) from the least band that delivers the
    input at ``p_max``, or nothing.  Enumerating which devices are on makes each case a concave
    resource problem, solved by bisection on the multiplier of ``sum w <= B`` with a golden-section
    search per device; the best case is the exact optimum (``2^active`` cases: an oracle for small N)."""
    shape = f["Q"].shape
    N = shape[-1]
    kw = dict(v_per_device=v_per_device, p_max=p_max, noise_psd=noise_psd)
    kind = f["kind"]
    sends = (kind != LOCAL) & (f["window_s"] > 0)
    idx = [n for n in range(N) if sends[..., n].any()]
    lo_raw = _min_raw_band(f, total_bw, p_max=p_max, noise_psd=noise_psd)
    zero_bw = np.zeros(shape)
    _, _, u_off = _evaluate(zero_bw, f, **kw)  # nothing sent: the surrogate at x = 0 (clipped), or 0
    best = None
    for on in itertools.product((False, True), repeat=len(idx)):
        on_mask = np.zeros(shape, dtype=bool)
        for n, flag in zip(idx, on):
            on_mask[..., n] = flag & sends[..., n]
        lower = np.where(on_mask & (kind == RAW), lo_raw, 0.0)
        lower = np.where(np.isfinite(lower), lower, np.inf)
        spare = total_bw - np.where(on_mask, lower, 0.0).sum(-1)
        feasible = spare >= 0
        lower = np.where(on_mask & np.isfinite(lower), lower, 0.0)
        hi = np.where(on_mask, lower + np.maximum(spare, 0.0)[..., None], 0.0)

        def bands(lam, lower=lower, hi=hi, on_mask=on_mask):
            w = _argmax_concave(lambda w: _evaluate(w, f, clip=False, **kw)[2] - lam[..., None] * w, lower, hi)
            return np.where(on_mask, w, 0.0)

        zero = np.zeros(shape[:-1])
        w = bands(zero)
        need = feasible & (w.sum(-1) > total_bw * (1 + 1e-12))
        if need.any():
            lam_lo, lam_hi = zero.copy(), np.full(shape[:-1], 1e-9)
            for _ in range(200):  # bracket: grow the price until the demand fits
                over = need & (bands(lam_hi).sum(-1) > total_bw)
                if not over.any():
                    break
                lam_hi = np.where(over, lam_hi * 4.0, lam_hi)
            for _ in range(70):
                mid = 0.5 * (lam_lo + lam_hi)
                over = bands(mid).sum(-1) > total_bw
                lam_lo = np.where(need & over, mid, lam_lo)
                lam_hi = np.where(need & ~over, mid, lam_hi)
            w = np.where(need[..., None], bands(np.where(need, lam_hi, zero)), w)
        p_on, x_on, u_on = _evaluate(w, f, clip=False, **kw)
        p = np.where(on_mask, p_on, 0.0)
        x = np.where(on_mask, x_on, 0.0)
        u = np.where(on_mask, u_on, u_off)
        tot = np.where(feasible, u.sum(-1), -np.inf)
        cand = Stage1(w, p, x, u, tot, np.zeros(shape[:-1], dtype=np.int64))
        if best is None:
            best = cand
            continue
        better = cand.utility_total > best.utility_total
        for name in ("bandwidth", "power", "fraction", "utility"):
            setattr(best, name, np.where(better[..., None], getattr(cand, name), getattr(best, name)))
        best.utility_total = np.where(better, cand.utility_total, best.utility_total)
    return best


def _min_raw_band(f: dict, total_bw: float, *, p_max, noise_psd):
    """Per device, the least band at which the raw input's ergodic rate at ``p_max`` delivers it in
    the window (``inf`` if none up to ``B``)."""
    lo = np.zeros(f["Q"].shape)
    hi = np.full(f["Q"].shape, float(total_bw))

    def ok(w):
        return raw_plan(
            w, gain=f["gain"], window_s=f["window_s"], total_bits=f["total_bits"], noise_psd=noise_psd, p_max=p_max
        )[0]

    possible = ok(hi)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        good = ok(mid)
        hi = np.where(good, mid, hi)
        lo = np.where(good, lo, mid)
    return np.where(possible, hi, np.inf)


def _slot_power(Z, gain, bandwidth, *, u_inner, map_bits, slot_s, noise_psd, p_max, remaining_bits=None):
    """(25) ``[U w tau / (b H W Z ln 2) - w N_0 / g]_0^{p_max}`` (``p_max`` where ``Z = 0``), capped
    at the power that sends exactly ``remaining_bits`` in the slot; 0 where ``g`` or ``w`` is 0."""
    Z, g, bw, mb = _b(Z, gain, bandwidth, map_bits)
    noise = bw * noise_psd
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(Z > 0, u_inner * bw * slot_s / (mb * Z * LN2) - noise / g, p_max)
        p = np.clip(p, 0.0, p_max)
        if remaining_bits is not None:
            rem = np.maximum(np.asarray(remaining_bits, dtype=float), 0.0)
            log_cap = np.minimum(rem * LN2 / (bw * slot_s), np.log1p(p_max * g / noise))
            p = np.minimum(p, np.minimum(np.expm1(log_cap) * noise / g, p_max))
    return np.where((g > 0) & (bw > 0), p, 0.0)


slot_power = finite_checked("slot_power", _slot_power)
