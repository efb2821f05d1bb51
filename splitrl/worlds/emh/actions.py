"""The action layout of one EMH device and its decoding: hybrid flat actions <-> (W, s, c, m, P)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from .scenario import EMHScenario
from .system import EMHSystem


# ---- action layout ---------------------------------------------------------------------------------
def agent_nvec(s: EMHScenario, num_points: int) -> list[int]:
    """Categories of one device's discrete action entries (window size first for ``task``)."""
    per_task = [num_points, s.num_channels, s.num_servers]
    if s.mdp == "time":
        return per_task
    return [s.max_window] + per_task * s.max_window


def agent_num_continuous(s: EMHScenario) -> int:
    return 1 if s.mdp == "time" else s.max_window


def action_gates(s: EMHScenario, num_devices: int = 1) -> dict | None:
    """Which action entries act (:func:`splitrl.rl.distributions.hybrid_dist_cls`): in a
    task window, the decisions of task slot ``x`` act only when the device's window size ``W > x``
    (entry ``W - 1 >= x``).  ``num_devices`` > 1: the joint action of :func:`split_joint` (every
    device's discrete entries, then every device's continuous ones).  ``None`` for ``time``."""
    if s.mdp == "time":
        return None
    d = len(agent_nvec(s, 1))  # one device's discrete entries: W - 1, then (s, c, m) per slot
    discrete: list = []
    continuous: list = []
    for n in range(num_devices):
        discrete += [None] + [[n * d, x] for x in range(s.max_window) for _ in range(3)]
        continuous += [[n * d, x] for x in range(s.max_window)]
    return {"discrete": discrete, "continuous": continuous}


def agent_action_space(s: EMHScenario, num_points: int) -> gym.spaces.Box:
    n = len(agent_nvec(s, num_points)) + agent_num_continuous(s)
    return gym.spaces.Box(-np.inf, np.inf, (n,), np.float32)


def observation_space(world: EMHSystem) -> gym.spaces.Box:
    return gym.spaces.Box(-np.inf, np.inf, (world.obs_dim,), np.float32)


def decode_actions(world: EMHSystem, actions: np.ndarray) -> dict:
    """``(N, dim)`` flat per-device actions -> window sizes, points, channels, servers, powers."""
    s = world.scenario
    a = np.asarray(actions, dtype=float)
    nvec = np.array(agent_nvec(s, len(world.share)))  # real points and any virtual ones
    d = len(nvec)
    disc = np.clip(np.rint(a[:, :d]), 0, nvec - 1).astype(np.int64)
    power = world.power(a[:, d:])
    if s.mdp == "time":
        return {"point": disc[:, 0], "channel": disc[:, 1], "server": disc[:, 2], "power": power[:, 0]}
    per = disc[:, 1:].reshape(s.num_devices, s.max_window, 3)
    return {
        "window": disc[:, 0] + 1,
        "point": per[..., 0],
        "channel": per[..., 1],
        "server": per[..., 2],
        "power": power,
    }


def encode_decisions(world: EMHSystem, window=None, point=None, channel=None, server=None, power_w=None) -> np.ndarray:
    """Inverse of :func:`decode_actions` for hand-written policies (arrays broadcast to shape)."""
    s = world.scenario
    N = s.num_devices
    shape = (N,) if s.mdp == "time" else (N, s.max_window)
    point = np.broadcast_to(point, shape)
    channel = np.broadcast_to(channel, shape)
    server = np.broadcast_to(server, shape)
    frac = np.clip(np.asarray(power_w, dtype=float) / s.p_limit_w, 1e-9, 1 - 1e-9)
    raw_power = np.log(frac / (1.0 - frac))
    raw_power = np.broadcast_to(raw_power, shape)
    if s.mdp == "time":
        return np.stack([point, channel, server, raw_power], axis=1).astype(np.float32)
    disc = np.stack([point, channel, server], axis=-1).reshape(N, -1)
    w = np.broadcast_to(np.asarray(window) - 1, (N,))[:, None]
    return np.concatenate([w, disc, raw_power], axis=1).astype(np.float32)


def agent_ids(num_devices: int) -> list[str]:
    return [f"md_{n}" for n in range(num_devices)]
