"""Non-learning baselines of the EMH-PPO world; each decides every device's flat action ``(N, dim)``
from the simulator (:class:`~splitrl.worlds.emh.system.EMHSystem`) and the global observation.

``Local-only`` (whole model on the device, ``W = W_max``), ``AgileNN`` (a fixed feature split:
half the MACs on the device, half of the raw input's bits sent; channel ``n mod C``, server
``n mod M``, a fixed power -- ``docs/assumptions/emh.md``), ``Round-robin`` (a coordinated
reference schedule in which no two transmitters share a channel) and ``CSI-sharing`` (every device
offloads; co-channel devices arrive at equal received power, which needs the window's gains -- a
reference for what channel state information buys).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from splitrl.worlds.base import Policy
from splitrl.worlds.emh.actions import encode_decisions
from splitrl.worlds.emh.physics import path_gain

if TYPE_CHECKING:
    from splitrl.worlds.emh.system import EMHSystem


class EMHPolicy(Policy):
    """Decides every device's flat action ``(N, dim)`` from the world and the global observation."""

    name = "policy"
    scenario_overrides: dict = {}

    def reset(self, world: EMHSystem, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, world: EMHSystem, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class LocalOnly(EMHPolicy):
    """The whole model on every device (``s = S``), full windows; nothing is sent."""

    name = "Local-only"

    def act(self, world, obs):
        s = world.scenario
        window = s.max_window if s.mdp == "task" else None
        return encode_decisions(world, window, world.num_points - 1, 0, 0, s.p_limit_w)


class AgileNN(EMHPolicy):
    """AgileNN-style fixed feature split (ratio 0.5): half the MACs on the device, half of the raw
    input's bits sent; device ``n`` on channel ``n mod C`` and server ``n mod M`` at ``power_frac``
    of ``P_limit``, full windows.  Evaluated on the operator-grained world with one extra virtual
    point (the split is not a cut of the original model)."""

    name = "AgileNN"

    def __init__(self, power_frac: float = 0.1):
        self.power_frac = power_frac

    def act(self, world, obs):
        s = world.scenario
        n = np.arange(s.num_devices)
        shape = (s.num_devices,) if s.mdp == "time" else (s.num_devices, 1)
        point = world.add_virtual_point("agilenn", 0.5, 0.5 * world.tx_bits[0])
        window = s.max_window if s.mdp == "task" else None
        return encode_decisions(
            world,
            window,
            point,
            (n % s.num_channels).reshape(shape),
            (n % s.num_servers).reshape(shape),
            self.power_frac * s.p_limit_w,
        )


class RoundRobin(EMHPolicy):
    """A hand-made coordinated schedule (a reference, not from the paper): at task position ``x``
    of a window (``time``: slot ``t``) device ``n`` has rank ``r = (n + x) mod N``; the ``C``
    lowest ranks send the raw input (``s = 1``) on channel ``r`` to server ``r mod M`` at
    ``power_frac * P_limit``, so no two transmitters share a channel; the others run locally."""

    name = "Round-robin"

    def __init__(self, power_frac: float = 0.02):
        self.power_frac = power_frac

    def act(self, world, obs):
        s = world.scenario
        N = s.num_devices
        x = np.arange(s.max_window)[None, :] if s.mdp == "task" else world.steps
        r = (np.arange(N)[:, None] + x) % N if s.mdp == "task" else (np.arange(N) + x) % N
        off = r < s.num_channels
        point = np.where(off, 0, world.num_points - 1)
        window = s.max_window if s.mdp == "task" else None
        return encode_decisions(
            world,
            window,
            point,
            np.where(off, r, 0),
            np.where(off, r % s.num_servers, 0),
            self.power_frac * s.p_limit_w,
        )


class CSISharing(EMHPolicy):
    """A hand-made schedule that uses the window's gains (a reference, not from the paper): every
    device sends the raw input (``s = 1``); at task position ``x`` (``time``: slot ``t``) device
    ``n`` has rank ``r = (n + x) mod N`` and uses channel ``r mod C`` and server ``r mod M``; on
    each channel the device with the weakest gain sends at ``power_frac * P_limit`` and the others
    at the power that makes their received power equal to it (eq. 1: SINR 1 for a pair)."""

    name = "CSI-sharing"

    def __init__(self, power_frac: float = 0.2):
        self.power_frac = power_frac

    def act(self, world, obs):
        s = world.scenario
        N = s.num_devices
        x = np.arange(s.max_window)[None, :] if s.mdp == "task" else np.array([[world.steps]])
        r = (np.arange(N)[:, None] + x) % N  # (N, X)
        channel, server = r % s.num_channels, r % s.num_servers
        gain = path_gain(
            world.distance, world.shadow_db, ref_distance_m=s.ref_distance_m, exponent=s.path_loss_exponent
        )[:, None]
        same = channel[:, None, :] == channel[None, :, :]  # (N, N, X)
        weakest = np.where(same, gain[None, :, :], np.inf).min(axis=1)  # per device and position
        power = self.power_frac * s.p_limit_w * weakest / gain
        if s.mdp == "time":
            channel, server, power = channel[:, 0], server[:, 0], power[:, 0]
        window = s.max_window if s.mdp == "task" else None
        return encode_decisions(world, window, 0, channel, server, power)


# Factories of the world's baselines (``EMHWorld.baselines``).
def local_only(evaluation: dict) -> EMHPolicy:
    return LocalOnly()


def agilenn(evaluation: dict) -> EMHPolicy:
    return AgileNN()


def round_robin(evaluation: dict) -> EMHPolicy:
    return RoundRobin()


def csi_sharing(evaluation: dict) -> EMHPolicy:
    return CSISharing()
