"""ENACHI's Stage I planner: the device fields of a split vector (windows coupled through the
batch's common edge start, eq. 16) and the split search over the candidates (greedy coordinate
ascent as the paper's "evaluate the utility for each candidate s", or exhaustive as the oracle).

Vectorised over leading batch dimensions; devices on the last axis.
"""

from __future__ import annotations

import itertools

import numpy as np

from .allocators import LOCAL, Stage1, allocate_bandwidth
from .physics import edge_delay, local_delay, local_energy, tx_window


def device_fields(scenario, tables, split, Q, gain) -> dict:
    """The per-device arrays :func:`~splitrl.worlds.enachi.allocators.allocate_bandwidth` reads,
    for candidate indices ``split`` ``(..., N)``, queues ``Q`` [J] and mean gains ``gain``."""
    s, t = scenario, tables
    split = np.asarray(split, dtype=np.int64)
    t_loc = local_delay(t.macs_local[split], cycles_per_mac=s.cycles_per_mac, f_local_hz=s.f_local_hz)
    t_edge = edge_delay(t.macs_edge[split], cycles_per_mac=s.cycles_per_mac, f_edge_hz=s.f_edge_hz)
    _, slots = tx_window(t_loc, t_edge, deadline_s=s.deadline_s, slot_s=s.slot_s)
    kind = t.kind[split]
    window = np.where(kind == LOCAL, 0.0, slots * s.slot_s)  # whole slots: Stage II sends in slots
    Q, gain = np.broadcast_arrays(np.asarray(Q, dtype=float), np.asarray(gain, dtype=float))
    shape = np.broadcast_shapes(split.shape, Q.shape)
    return {
        "Q": np.broadcast_to(Q, shape),
        "kind": kind,
        "gain": np.broadcast_to(gain, shape),
        "window_s": window,
        "total_bits": t.total_bits[split],
        "a": t.a[split],
        "b": t.b[split],
        "c": t.c[split],
        "a_max": np.full(shape, t.a_max),
        "e_local": local_energy(
            t.macs_local[split], cycles_per_mac=s.cycles_per_mac, f_local_hz=s.f_local_hz, kappa=s.kappa
        ),
        "local_ok": t_loc <= s.deadline_s + 1e-12,
        "t_local_s": t_loc,
        "t_edge_s": t_edge,
        "slots": np.where(kind == LOCAL, 0, slots),
    }


def allocate(scenario, tables, split, Q, gain, *, method: str | None = None) -> tuple[dict, Stage1]:
    """Stage I for a fixed split vector: the device fields and the bandwidth/power allocation."""
    s = scenario
    fields = device_fields(s, tables, split, Q, gain)
    stage1 = allocate_bandwidth(
        fields,
        total_bw_hz=s.bandwidth_hz,
        v_per_device=s.lyapunov_v / fields["Q"].shape[-1],
        p_max=s.p_max_w,
        noise_psd=s.noise_psd,
        method=method or s.bandwidth_allocator,
        max_iter=s.alg1_max_iter,
        tol=s.alg1_tol,
        delta_bw_hz=s.alg1_delta_bw_fraction * s.bandwidth_hz,
    )
    return fields, stage1


def search_split(
    scenario,
    tables,
    Q,
    gain,
    *,
    method: str = "greedy",
    sweeps: int = 1,
    init=None,
    allowed=None,
    allocator: str | None = None,
) -> tuple[np.ndarray, Stage1]:
    """The split vector maximising the Stage I utility (17) and its allocation.

    ``greedy``: coordinate ascent from ``init`` (default: every device at its best candidate when
    alone), each device in turn tries every candidate with a full re-allocation of the vector,
    ``sweeps`` passes; ties keep the current split.  ``exhaustive``: every vector (``S^N``; the
    oracle for small N).  ``allowed`` ``(S,)`` bool restricts the candidates."""
    Q = np.asarray(Q, dtype=float)
    batch, N = Q.shape[:-1], Q.shape[-1]
    S = len(tables.points)
    cand = np.arange(S) if allowed is None else np.flatnonzero(np.asarray(allowed))
    if method == "exhaustive":
        vectors = np.array(list(itertools.product(cand, repeat=N)), dtype=np.int64)  # (V, N)
        split = np.broadcast_to(vectors, (*batch, len(vectors), N))
        _, st = allocate(scenario, tables, split, Q[..., None, :], np.asarray(gain)[..., None, :], method=allocator)
        best = st.utility_total.argmax(-1)
        return _take(split, st, best)
    if method != "greedy":
        raise ValueError(f"method must be 'greedy' or 'exhaustive', got {method!r}")
    if init is None:  # each device alone (the others local): its best candidate
        current = np.empty((*batch, N), dtype=np.int64)
        local = cand[tables.kind[cand] == LOCAL]
        base = np.full((*batch, N), local[0] if len(local) else cand[0], dtype=np.int64)
        for n in range(N):
            trial = np.repeat(base[..., None, :], len(cand), axis=-2)
            trial[..., n] = cand
            _, st = allocate(scenario, tables, trial, Q[..., None, :], np.asarray(gain)[..., None, :], method=allocator)
            current[..., n] = cand[st.utility[..., n].argmax(-1)]
    else:
        current = np.broadcast_to(np.asarray(init, dtype=np.int64), (*batch, N)).copy()
    _, best_st = allocate(scenario, tables, current, Q, gain, method=allocator)
    for _ in range(sweeps):
        for n in range(N):
            trial = np.repeat(current[..., None, :], len(cand), axis=-2)
            trial[..., n] = cand
            _, st = allocate(scenario, tables, trial, Q[..., None, :], np.asarray(gain)[..., None, :], method=allocator)
            pick = st.utility_total.argmax(-1)
            value = np.take_along_axis(st.utility_total, pick[..., None], -1)[..., 0]
            better = value > best_st.utility_total + 1e-12 * np.abs(best_st.utility_total)
            new_split, new_st = _take(trial, st, pick)
            current = np.where(better[..., None], new_split, current)
            best_st = _merge(best_st, new_st, better)
    return current, best_st


def _take(split, st: Stage1, idx):
    """Row ``idx`` of the candidate axis (-2) of a batched search."""

    def pick(a, per_device=True):
        if per_device:
            return np.take_along_axis(a, idx[..., None, None], -2)[..., 0, :]
        return np.take_along_axis(a, idx[..., None], -1)[..., 0]

    out = Stage1(
        pick(st.bandwidth),
        pick(st.power),
        pick(st.fraction),
        pick(st.utility),
        pick(st.utility_total, False),
        pick(st.iterations, False),
    )
    return pick(np.asarray(split)), out


def _merge(old: Stage1, new: Stage1, take) -> Stage1:
    return Stage1(
        *(
            np.where(take[..., None], getattr(new, k), getattr(old, k))
            for k in ("bandwidth", "power", "fraction", "utility")
        ),
        np.where(take, new.utility_total, old.utility_total),
        np.where(take, new.iterations, old.iterations),
    )
