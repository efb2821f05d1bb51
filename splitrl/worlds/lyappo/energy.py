"""Device energy per slot (LyaPPO eqs. 5-6), in J."""

from __future__ import annotations

import numpy as np


def local_energy(f_local_hz, *, tau_s: float, kappa: float):
    """``tau * kappa * (sum_n f_n)^3``: one CPU shared by the device's services (eq. 5).

    ``f_local_hz`` has shape ``(..., N)``; the result has shape ``(...)``.
    """
    return tau_s * kappa * np.sum(f_local_hz, axis=-1) ** 3


def transmission_energy(power_w, *, tau_s: float):
    """``tau * p`` (eq. 6)."""
    return tau_s * np.asarray(power_w, dtype=float)
