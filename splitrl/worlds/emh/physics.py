"""Physics of the EMH-PPO world (emh-ppo.md Section III, Table III), vectorised numpy, SI units.

Pure functions for the radio and per-task latency/energy models, with the modelling choices
recorded in ``docs/assumptions/emh.md``.  Arrays carry the devices on the last axis (``(..., N)``).
"""

from __future__ import annotations

import numpy as np


def path_gain(distance_m, shadow_db, *, ref_distance_m: float = 1.0, exponent: float = 3.0):
    """Power gain ``(d_hat / d)^h * 10^(X / 10)`` with shadow fading ``X`` in dB (Table III: h = 3,
    d_hat = 1 m, X ~ N(0, 8^2) drawn by the caller)."""
    d = np.asarray(distance_m, dtype=float)
    return (ref_distance_m / d) ** exponent * 10.0 ** (np.asarray(shadow_db, dtype=float) / 10.0)


def uplink_rates(power_w, gain, channel, *, bandwidth_hz: float, noise_w: float, active=None):
    """Eq. (1) with co-channel interference: ``B log2(1 + P_n G_n / (sigma + sum_i P_i G_i))``.

    The sum runs over the *other active* devices on the *same* channel (channels are orthogonal;
    a device with nothing to send does not interfere).  ``power_w``, ``gain``, ``channel`` and
    ``active`` have shape ``(..., N)``; inactive devices get rate 0.
    """
    p = np.asarray(power_w, dtype=float)
    g = np.asarray(gain, dtype=float)
    ch = np.asarray(channel)
    act = np.ones(p.shape, dtype=bool) if active is None else np.asarray(active, dtype=bool)
    rx = np.where(act, p * g, 0.0)  # received power of every active transmitter
    same = ch[..., :, None] == ch[..., None, :]  # (..., N, N)
    total_same = np.einsum("...ij,...j->...i", same.astype(float), rx)
    interference = total_same - rx
    rate = bandwidth_hz * np.log2(1.0 + rx / (noise_w + interference))
    return np.where(act, rate, 0.0)


def server_load(server, uses_server) -> np.ndarray:
    """How many devices share each device's server: ``sum_i I(m_i = m_n)`` over devices that
    offload anything (eq. 2's contention count), 0 for a device that offloads nothing."""
    m = np.asarray(server)
    use = np.asarray(uses_server, dtype=bool)
    same = (m[..., :, None] == m[..., None, :]) & use[..., None, :]
    return np.where(use, same.sum(-1), 0)


def task_latency_energy(
    device_share,
    tx_bits,
    rate,
    power_w,
    load,
    *,
    l0_s: float,
    local_factor: float = 5.0,
    total_macs: float,
    zeta_j_per_mmac: float,
):
    """Per-task latency (eq. 2) and device energy (eq. 3) of each device, shape ``(..., N)``.

    ``device_share``: fraction of the model's MACs run on the device (0 .. 1); ``tx_bits``:
    intermediate data sent; ``rate`` from :func:`uplink_rates`; ``load`` from
    :func:`server_load`.  Local latency is ``local_factor * L0 * share`` (Table III: L_local =
    5 L0 for the whole model); server latency is ``L0 * load * (1 - share)`` (eq. 2 scaled by the
    server's share of the work, so that a fully local task costs no server time); transmission
    latency is ``I / R``.  Energy is ``P * I / R + zeta * M_n`` with ``M_n`` in MMACs (Table III
    reports loads in MMACs; zeta = 1e-5 J per MMAC).
    Returns ``(latency_s, energy_j, parts)`` with ``parts`` holding the three latency terms.
    """
    share = np.asarray(device_share, dtype=float)
    bits = np.asarray(tx_bits, dtype=float)
    r = np.asarray(rate, dtype=float)
    sending = bits > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        l_tx = np.where(sending, bits / r, 0.0)
    l_local = local_factor * l0_s * share
    l_server = l0_s * np.asarray(load, dtype=float) * (1.0 - share)
    latency = l_local + l_tx + l_server
    energy = np.asarray(power_w, dtype=float) * l_tx + zeta_j_per_mmac * share * total_macs / 1e6
    return latency, energy, {"local": l_local, "tx": l_tx, "server": l_server}
