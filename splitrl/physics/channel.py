"""Wireless uplink: free-space-style average gain, Rayleigh fading, FDMA Shannon rate (LyaPPO eq. 3).

SI units throughout: distances in m, frequencies in Hz, powers in W, noise PSD in W/Hz.
"""

from __future__ import annotations

import numpy as np

SPEED_OF_LIGHT = 299_792_458.0  # m/s


def dbm_per_hz_to_w_per_hz(dbm_per_hz: float | np.ndarray) -> float | np.ndarray:
    """Noise power spectral density in dBm/Hz -> W/Hz (-174 dBm/Hz -> 3.98e-21 W/Hz)."""
    return 10.0 ** ((np.asarray(dbm_per_hz, dtype=float) - 30.0) / 10.0)


def average_gain(distance_m, *, antenna_gain: float, carrier_hz: float, path_loss_exp: float):
    """Average channel gain ``A_d (c / (4 pi f_c d))^{d_e}`` (the paper's model after [18])."""
    d = np.asarray(distance_m, dtype=float)
    return antenna_gain * (SPEED_OF_LIGHT / (4.0 * np.pi * carrier_hz * d)) ** path_loss_exp


def rayleigh_gain(mean_gain, rng: np.random.Generator, size=None):
    """Instantaneous power gain ``h = beta * h_bar`` with ``beta ~ Exp(1)`` (Rayleigh fading)."""
    mean_gain = np.asarray(mean_gain, dtype=float)
    return mean_gain * rng.exponential(1.0, size=size if size is not None else mean_gain.shape)


def shannon_rate(power_w, gain, *, bandwidth_hz, noise_psd_w_per_hz):
    """Achievable rate ``b log2(1 + p h / (b N0))`` in bit/s (eq. 3)."""
    snr = np.asarray(power_w, dtype=float) * gain / (bandwidth_hz * noise_psd_w_per_hz)
    return bandwidth_hz * np.log2(1.0 + snr)


def power_for_rate(rate_bps, gain, *, bandwidth_hz, noise_psd_w_per_hz):
    """Inverse of :func:`shannon_rate`: the transmit power that achieves ``rate_bps``."""
    rate = np.asarray(rate_bps, dtype=float)
    gain = np.asarray(gain, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = bandwidth_hz * noise_psd_w_per_hz / gain * np.expm1(rate * np.log(2.0) / bandwidth_hz)
    return np.where(rate > 0, p, 0.0)
