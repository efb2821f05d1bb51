"""ENACHI's physics (design notes section 1), plain vectorised numpy in SI units over leading batch
dimensions, devices on the last axis; scalars broadcast.

* :func:`local_delay`, :func:`local_energy`, :func:`edge_delay` -- eqs. (1), (2), (8), with the
  cycles-per-MAC factor ``rho`` (the paper divides MACs by Hz).
* :func:`tx_window` -- eqs. (9) and (16): the transmission window left by local computing and the
  batch's common edge start (``max`` over the devices couples them).
* :func:`planned_fraction` -- eq. (15): the fraction of the feature maps a constant power delivers
  over the window at the average gain.
* :func:`maps_received` -- eq. (4) with cumulative-bit accounting (a literal per-slot floor sends
  nothing when one map is larger than a slot's bits).
* :func:`energy_queue_step`, :func:`power_queue_step` -- the virtual queues (12) and (23).
"""

from __future__ import annotations

import numpy as np

LN2 = float(np.log(2.0))


def local_delay(macs_local, *, cycles_per_mac, f_local_hz):
    """(1) ``rho W_loc / f_n`` [s]."""
    return cycles_per_mac * np.asarray(macs_local, dtype=float) / f_local_hz


def local_energy(macs_local, *, cycles_per_mac, f_local_hz, kappa):
    """(2) ``kappa f_n^2 rho W_loc`` [J]."""
    return kappa * f_local_hz**2 * cycles_per_mac * np.asarray(macs_local, dtype=float)


def edge_delay(macs_edge, *, cycles_per_mac, f_edge_hz):
    """(8) ``rho W_edge / f_e`` [s]."""
    return cycles_per_mac * np.asarray(macs_edge, dtype=float) / f_edge_hz


def tx_window(t_local, t_edge, *, deadline_s, slot_s):
    """(9) + (16): ``T_d - T_loc_n - max_n' T_edge_n'`` per device [s] (negative: infeasible) and
    its whole slots ``floor(window / tau)`` (>= 0)."""
    t_local, t_edge = np.asarray(t_local, dtype=float), np.asarray(t_edge, dtype=float)
    window = deadline_s - t_local - t_edge.max(-1, keepdims=True)
    slots = np.floor(np.maximum(window, 0.0) / slot_s + 1e-9).astype(np.int64)
    return window, slots


def snr_coefficient(bandwidth_hz, gain, noise_psd):
    """``beta = g / (omega N_0)`` [1/W] (``inf``-free: 0 where the band is 0)."""
    bw = np.asarray(bandwidth_hz, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bw > 0, np.asarray(gain, dtype=float) / (bw * noise_psd), 0.0)


def planned_fraction(power_w, bandwidth_hz, *, gain, window_s, total_bits, noise_psd):
    """(15) ``min(1, omega T / S log2(1 + p g / (omega N_0)))``: 0 where the band or window is 0."""
    bw = np.asarray(bandwidth_hz, dtype=float)
    window = np.maximum(np.asarray(window_s, dtype=float), 0.0)
    beta = snr_coefficient(bw, gain, noise_psd)
    bits = bw * window * np.log1p(beta * np.asarray(power_w, dtype=float)) / LN2
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(np.asarray(total_bits) > 0, bits / np.asarray(total_bits, dtype=float), 1.0)
    return np.minimum(x, 1.0)


def maps_received(bits_cum, map_bits, num_maps):
    """(4), cumulative: ``min(K, floor(D / (H W b)))`` maps after ``D`` bits in total (0 where a
    split sends no maps)."""
    mb = np.asarray(map_bits, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        maps = np.where(mb > 0, np.floor(np.asarray(bits_cum, dtype=float) / np.where(mb > 0, mb, 1.0) + 1e-9), 0.0)
    return np.minimum(maps, num_maps).astype(np.int64)


def energy_queue_step(Q, energy_j, budget_j):
    """(12) ``max(Q + E - E_bar, 0)`` [J]."""
    return np.maximum(np.asarray(Q, dtype=float) + energy_j - budget_j, 0.0)


def power_queue_step(Z, power_w, p_ref_w):
    """(23) ``max(Z + p - p_ref, 0)`` [W]."""
    return np.maximum(np.asarray(Z, dtype=float) + power_w - p_ref_w, 0.0)
