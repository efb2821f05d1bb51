"""The EMH-PPO world: N devices, M MEC servers, C shared channels, operator-grained partitioning.

Physics (``emh-ppo.md`` Section III, Table III; equations in :mod:`splitrl.envs.emh_physics`):
each device ``n`` holds a queue of ``X_n ~ Poisson(task_mean)`` inference tasks of one model
(``fixed_tasks`` fixes it, as the paper does for testing).  Per task it picks a partition point
``s`` (the device runs the operators before the cut and sends the cut's outputs), a channel ``c``,
a server ``m`` and a transmit power ``P <= p_limit_w``.  Rates follow eq. (1) with co-channel
interference, latency eq. (2) with server contention, energy eq. (3).  Distances are redrawn
from ``U[distance_min_m, distance_max_m]`` (``fixed_distance_m`` fixes them) and shadowing from
``N(0, shadow_std_db^2)`` at every decision (user mobility).

Two MDPs on this world (``scenario.mdp``):

``task`` -- the paper's task-aware MDP (Section IV-A).
    A step is a *task window*: every device ``n`` is given ``W_n <= max_window`` tasks and a
    decision ``(s, c, m, P)`` for each; the ``x``-th tasks of all devices run side by side (the
    first ones start together), so co-channel interference and server contention are counted
    among the devices' ``x``-th tasks.  The window lasts until the slowest device is done:
    ``T_k = max_n L_{n,k}`` with ``L_{n,k} = sum_x L_{n,k,x}``.  Reward eq. (8)::

        r_k = -((T_k + alpha * L_wait,k) / W_k + beta / N * E_k / W_k)

    with ``W_k`` the mean window size over devices, ``E_k`` the devices' total energy and
    ``L_wait,k`` the mean idle time (``T_k - L_{n,k}``) of the devices that had tasks.

``time`` -- the time-based MDP of the paper's Fig. 7 comparison.
    A step is a fixed slot of ``slot_ms``; each device decides ``(s, c, m, P)`` for the tasks it
    starts in the slot (a task runs on across slots; a device starts its next task as soon as the
    previous one ends).  Reward ``-(tau * 1[tasks left] + beta / N * E_slot)``: the episode's
    return is minus the makespan plus the weighted energy, the paper's objective (4), without a
    waiting penalty (as in the paper).

Observations (every agent sees the global state ``S_k = (X_k, d_k)``, as the embedding network
does): ``X_n / task_mean`` (``queue_obs_cap``: ``min(X_n, cap) / cap``) and ``d_n / distance_max_m``
for all devices, the uplink gains in dB with ``observe_gain``, plus, for ``time``, each
device's residual busy time in slots.  Actions of one device: one flat ``Box`` read as a hybrid
action (:mod:`splitrl.rl_modules.distributions`): category indices first -- ``task``: ``W - 1``,
then ``(s - 1, c, m)`` for each of the ``max_window`` task slots; ``time``: ``(s - 1, c, m)`` --
then one real per task slot mapped to power ``P = p_limit * max(sigmoid(a), p_floor)``.
The episode terminates when every task is done (``max_steps`` truncates a time-based episode).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import gymnasium as gym
import numpy as np

from .dnn import available_models, partition_table
from .emh_physics import path_gain, server_load, task_latency_energy, uplink_rates
from .scenario import ScenarioError, _as_number, check_ranges


@dataclass(frozen=True)
class EMHScenario:
    """Parameters of the EMH-PPO world (Table III defaults)."""

    world: str = "emh"
    name: str = "emh-table3"
    num_devices: int = 3                   # N
    num_servers: int = 2                   # M computing MEC servers
    num_channels: int = 2                  # C shared channels
    model: str = "resnet50"                # the inference model of every device
    partitioning: str = "operator"         # operator (Algorithm 1) | vertical (layer chain)
    mdp: str = "task"                      # task (task windows) | time (fixed slots)
    slot_ms: float = 50.0                  # slot length of the time-based MDP [ms]
    task_mean: float = 50.0                # X_n ~ Poisson(task_mean)
    fixed_tasks: int | None = None         # every device gets exactly this many tasks (testing)
    max_window: int = 5                    # W_max
    p_limit_w: float = 1.0                 # P_limit [W]
    p_floor: float = 0.001                 # lowest power as a fraction of P_limit (avoids R = 0)
    bandwidth_hz: float = 1e6              # B_c per channel
    noise_w: float = 1e-9                  # sigma_c [W]
    path_loss_exponent: float = 3.0        # h
    ref_distance_m: float = 1.0            # d_hat
    distance_min_m: float = 1.0            # d ~ U[min, max] per decision
    distance_max_m: float = 100.0
    fixed_distance_m: float | None = None  # every device at this distance (testing)
    shadow_std_db: float = 8.0             # shadow fading std [dB]
    energy_per_mmac_j: float = 1e-5        # zeta [J per MMAC]
    energy_weight: float = 50.0            # beta
    waiting_weight: float = 0.05           # alpha
    l0_s: float | None = None              # server baseline latency L0 [s]; null: timed here
    local_factor: float = 5.0              # L_local = local_factor * L0 for the whole model
    input_bits_per_element: float = 0.5    # raw input as sent: an encoded (JPEG-class) frame, 9.4 kB
    feature_bits_per_element: float = 8.0  # intermediate features as sent: 8-bit quantised
    observe_gain: bool = True              # the state also holds each device's uplink gain (CSI)
    queue_obs_cap: float | None = None     # queue feature min(X_n, cap) / cap; null: X_n / task_mean
    max_steps: int = 100_000               # truncation (time-based MDP; windows always end)

    def table(self):
        points = "operator" if self.partitioning == "operator" else "all"
        return partition_table(self.model, self.input_bits_per_element, points, self.feature_bits_per_element)

    @property
    def slot_seconds(self) -> float:
        return self.slot_ms / 1e3

    def resolved_l0(self) -> float:
        if self.l0_s is not None:
            return float(self.l0_s)
        from .latency import measure_server_latency

        return measure_server_latency(self.model)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


EMH_KEYS = tuple(f.name for f in fields(EMHScenario))
_INT1 = ("num_devices", "num_servers", "num_channels", "max_window", "max_steps")
_POS = ("slot_ms", "task_mean", "p_limit_w", "p_floor", "bandwidth_hz", "noise_w", "path_loss_exponent",
        "ref_distance_m", "distance_min_m", "distance_max_m", "local_factor", "input_bits_per_element",
        "feature_bits_per_element")
_NONNEG = ("shadow_std_db", "energy_per_mmac_j", "energy_weight", "waiting_weight")


def make_emh_scenario(overrides: Mapping[str, Any] | None = None, *, resolve_l0: bool = False) -> EMHScenario:
    """Validate ``overrides`` on top of Table III; ``resolve_l0`` replaces a null ``l0_s`` with
    the timed value (so that a run records the number it used)."""
    values = EMHScenario().to_dict()
    for key, value in dict(overrides or {}).items():
        if key not in values:
            raise ScenarioError(key, f"unknown key for world 'emh'; allowed keys: {', '.join(EMH_KEYS)}")
        values[key] = value
    if values["world"] != "emh":
        raise ScenarioError("world", f"expected 'emh', got {values['world']!r}")
    check_ranges(values, _INT1, _POS, _NONNEG)
    if values["p_floor"] > 1:
        raise ScenarioError("p_floor", f"must be in (0, 1] (a fraction of p_limit_w), got {values['p_floor']}")
    for key, lo in (("fixed_tasks", 1), ("fixed_distance_m", None), ("l0_s", None), ("queue_obs_cap", None)):
        if values[key] is not None:
            values[key] = _as_number(key, values[key], integer=key == "fixed_tasks")
            if values[key] < (lo or 0) or (lo is None and values[key] <= 0):
                raise ScenarioError(key, f"must be {'>= 1' if lo else '> 0'} or null, got {values[key]}")
    if not isinstance(values["observe_gain"], bool):
        raise ScenarioError("observe_gain", f"expected true or false, got {values['observe_gain']!r}")
    if not isinstance(values["name"], str) or not values["name"]:
        raise ScenarioError("name", f"expected a non-empty string, got {values['name']!r}")
    if values["distance_min_m"] > values["distance_max_m"]:
        raise ScenarioError("distance_min_m", f"must be <= distance_max_m ({values['distance_max_m']}), "
                            f"got {values['distance_min_m']}")
    for key, allowed in (("partitioning", ("operator", "vertical")), ("mdp", ("task", "time"))):
        if values[key] not in allowed:
            raise ScenarioError(key, f"expected one of {', '.join(allowed)}, got {values[key]!r}")
    if values["model"] not in available_models():
        raise ScenarioError("model", f"unknown model {values['model']!r}; known profiles: "
                            f"{', '.join(available_models())}")
    scenario = EMHScenario(**values)
    if resolve_l0 and scenario.l0_s is None:
        scenario = EMHScenario(**{**values, "l0_s": scenario.resolved_l0()})
    return scenario


#: Step-info keys summed over an episode (``info["episode"]``; RLlib may hand a callback only the
#: episode's last chunk of steps, so the env carries the totals itself).
TOTAL_KEYS = ("reward", "time_s", "energy_j", "tasks", "idle_s", "device_macs_share")


class EMHWorld:
    """Vectorised numpy core of the EMH-PPO world (one episode at a time, all devices at once)."""

    def __init__(self, scenario: EMHScenario):
        self.scenario = s = scenario
        tab = s.table()
        self.share = np.asarray(tab.c, dtype=float)          # device share of the MACs per point
        self.tx_bits = np.asarray(tab.d * tab.input_bits, dtype=float)
        self.tx_bits[-1] = 0.0                               # s = S: fully local, nothing sent
        self.total_macs = tab.total_macs
        self.num_points = len(self.share)
        self.l0 = s.resolved_l0()
        self.rng = np.random.default_rng()
        N = s.num_devices
        self.remaining = np.zeros(N, dtype=np.int64)
        self.distance = np.ones(N)
        self.shadow_db = np.zeros(N)
        self.busy = np.zeros(N)  # time-based MDP: time already committed beyond the slot start
        self.steps = 0

    def nominal_cost(self) -> np.ndarray:
        """Per-task cost of every real point in eq. (8)'s units, ``L + beta / N * E``, for a lone
        device at the mid distance without shadowing or interference, sending at ``P_limit / 2``
        to an unshared server (eqs. 2-3)."""
        s = self.scenario
        d = 0.5 * (s.distance_min_m + s.distance_max_m)
        gain = (s.ref_distance_m / d) ** s.path_loss_exponent
        p = 0.5 * s.p_limit_w
        rate = s.bandwidth_hz * np.log2(1.0 + p * gain / s.noise_w)
        share, bits = self.share[:self.num_points], self.tx_bits[:self.num_points]
        t_tx = bits / rate
        latency = s.local_factor * self.l0 * share + t_tx + self.l0 * (1.0 - share)
        energy = p * t_tx + s.energy_per_mmac_j * share * self.total_macs / 1e6
        return latency + s.energy_weight / s.num_devices * energy

    def pareto_points(self) -> list[int]:
        """0-based indices of the real points on the Pareto front of (device MAC share, bits
        sent), one per distinct pair, ordered by share.  A task's latency and energy depend on
        its point only through that pair, increasingly in both (eqs. 2-3 with ``local_factor``
        above the server load), so a point off the front never helps."""
        share = self.share[:self.num_points]
        bits = self.tx_bits[:self.num_points]
        keep: dict[tuple[float, float], int] = {}
        for i, (a, b) in enumerate(zip(share, bits)):
            if not np.any((share <= a) & (bits <= b) & ((share < a) | (bits < b))):
                keep.setdefault((float(a), float(b)), i)
        return [keep[k] for k in sorted(keep)]

    def add_virtual_point(self, name: str, share: float, tx_bits: float) -> int:
        """Append a point that is not a cut of the model (e.g. AgileNN's feature split) for
        hand-written policies; agents' action spaces keep the ``num_points`` real ones.
        Returns its 0-based index (the same index for the same name)."""
        self._virtual = getattr(self, "_virtual", {})
        if name not in self._virtual:
            self._virtual[name] = len(self.share)
            self.share = np.append(self.share, float(share))
            self.tx_bits = np.append(self.tx_bits, float(tx_bits))
        return self._virtual[name]

    # ---- state -------------------------------------------------------------------------------
    def draw_channel(self) -> None:
        """Redraw the devices' distances and shadowing from the world's generator (user mobility;
        done after every decision)."""
        s, N = self.scenario, self.scenario.num_devices
        if s.fixed_distance_m is not None:
            self.distance = np.full(N, float(s.fixed_distance_m))
        else:
            self.distance = self.rng.uniform(s.distance_min_m, s.distance_max_m, N)
        self.shadow_db = self.rng.normal(0.0, s.shadow_std_db, N) if s.shadow_std_db > 0 else np.zeros(N)

    def reset(self, rng: np.random.Generator) -> None:
        s = self.scenario
        self.rng = rng
        N = s.num_devices
        if s.fixed_tasks is not None:
            self.remaining = np.full(N, int(s.fixed_tasks), dtype=np.int64)
        else:  # at least one task per device, so every device takes part
            self.remaining = np.maximum(self.rng.poisson(s.task_mean, N), 1).astype(np.int64)
        self.busy = np.zeros(N)
        self.steps = 0
        self.totals = dict.fromkeys(TOTAL_KEYS, 0.0)
        self.draw_channel()

    @property
    def done(self) -> bool:
        return bool(self.remaining.sum() == 0 and not (self.busy > 0).any())

    def observation(self) -> np.ndarray:
        s = self.scenario
        if s.queue_obs_cap is None:
            queue = self.remaining / s.task_mean
        else:  # the same state for every queue longer than the cap: no count out of distribution
            queue = np.minimum(self.remaining, s.queue_obs_cap) / s.queue_obs_cap
        parts = [queue, self.distance / s.distance_max_m]
        if s.observe_gain:  # the window's gain in dB (path loss and shadowing), scaled to about [-1, 0]
            gain = path_gain(self.distance, self.shadow_db, ref_distance_m=s.ref_distance_m,
                             exponent=s.path_loss_exponent)
            parts.append(10.0 * np.log10(gain) / self._gain_scale_db)
        if s.mdp == "time":
            parts.append(np.minimum(self.busy / s.slot_seconds, 100.0))
        return np.concatenate(parts).astype(np.float32)

    @property
    def obs_dim(self) -> int:
        s = self.scenario
        return s.num_devices * (2 + int(s.observe_gain) + int(s.mdp == "time"))

    @property
    def _gain_scale_db(self) -> float:
        """Path loss at the largest distance in dB (60 for Table III), the gain feature's unit."""
        s = self.scenario
        return max(10.0 * s.path_loss_exponent * np.log10(s.distance_max_m / s.ref_distance_m), 1.0)

    # ---- physics of a set of tasks run side by side ------------------------------------------
    def evaluate_tasks(self, point, channel, server, power, active):
        """Latency, energy and device MAC share of each device's task at each position, arrays
        ``(N, X)``, on the current channel draw, without advancing the world: positions are task
        indices within the window (``task``) or the slot's decision (``time``); ``point`` is
        0-based, ``power`` in W, ``active`` marks the tasks that run (the others score 0)."""
        s = self.scenario
        share = self.share[point]
        bits = np.where(active, self.tx_bits[point], 0.0)
        sending = active & (bits > 0)
        gain = path_gain(self.distance, self.shadow_db, ref_distance_m=s.ref_distance_m,
                         exponent=s.path_loss_exponent)
        # devices on the last axis for the physics helpers: (X, N)
        rate = uplink_rates(power.T, gain[None, :], channel.T, bandwidth_hz=s.bandwidth_hz, noise_w=s.noise_w,
                            active=sending.T).T
        load = server_load(server.T, (active & (share < 1.0)).T).T
        lat, energy, _ = task_latency_energy(share, bits, rate, power, load, l0_s=self.l0, local_factor=s.local_factor,
                                             total_macs=self.total_macs, zeta_j_per_mmac=s.energy_per_mmac_j)
        return np.where(active, lat, 0.0), np.where(active, energy, 0.0), np.where(active, share, 0.0)

    def power(self, raw) -> np.ndarray:
        """Transmit power of a raw action entry: ``P_limit * max(sigmoid(a), p_floor)``."""
        s = self.scenario
        a = np.clip(np.asarray(raw, dtype=float), -50.0, 50.0)
        return s.p_limit_w * np.maximum(1.0 / (1.0 + np.exp(-a)), s.p_floor)

    def step_window(self, window, point, channel, server, power) -> dict:
        """One task window.  ``window``: ``(N,)`` sizes ``1..W_max``; ``point`` (0-based, ``s - 1``),
        ``channel``, ``server``: ``(N, W_max)`` ints; ``power``: ``(N, W_max)`` watts."""
        s = self.scenario
        W = np.minimum(np.clip(window, 1, s.max_window), self.remaining)
        active = np.arange(s.max_window)[None, :] < W[:, None]
        lat, energy, share = self.evaluate_tasks(point, channel, server, power, active)
        per_device = lat.sum(1)
        T = float(per_device.max())
        had = W > 0
        idle = np.where(had, T - per_device, 0.0)
        wait = float(idle[had].mean()) if had.any() else 0.0
        E = float(energy.sum())
        w_mean = float(W.mean())
        reward = -((T + s.waiting_weight * wait) / w_mean + s.energy_weight / s.num_devices * E / w_mean)
        self.remaining = self.remaining - W
        self.steps += 1
        self.draw_channel()
        tasks = int(W.sum())
        return {"reward": reward, "time_s": T, "energy_j": E, "tasks": tasks, "idle_s": float(idle.sum()),
                "device_share": float(share.sum() / max(tasks, 1)), "window": w_mean}

    def step_slot(self, point, channel, server, power) -> dict:
        """One slot of the time-based MDP; arguments ``(N,)`` (one decision per device)."""
        s = self.scenario
        tau = s.slot_seconds
        N = s.num_devices
        busy_before = (self.remaining > 0) | (self.busy > 0)
        # the decision's latency/energy per task, with every device that starts tasks this slot active
        starts = (self.remaining > 0) & (self.busy < tau)
        lat, energy, share = self.evaluate_tasks(point[:, None], channel[:, None], server[:, None], power[:, None],
                                         starts[:, None])
        lat, energy, share = lat[:, 0], energy[:, 0], share[:, 0]
        t = self.busy.copy()
        finish = np.where(busy_before, t, 0.0)   # when each device's last task ends, from slot start
        started = np.zeros(N, dtype=np.int64)
        while True:
            go = starts & (t < tau) & (self.remaining - started > 0)
            if not go.any():
                break
            t = np.where(go, t + lat, t)
            started += go
            finish = np.where(go, t, finish)
        E = float((energy * started).sum())
        self.remaining = self.remaining - started
        self.busy = np.maximum(t - tau, 0.0)
        self.steps += 1
        all_done = self.remaining.sum() == 0 and not (self.busy > 0).any()
        elapsed = float(finish.max()) if all_done else tau
        reward = -(tau * float(busy_before.any()) + s.energy_weight / N * E)
        self.draw_channel()
        tasks = int(started.sum())
        return {"reward": reward, "time_s": elapsed if busy_before.any() else 0.0, "energy_j": E, "tasks": tasks,
                "idle_s": 0.0, "device_share": float((share * started).sum() / max(tasks, 1)), "window": float(started.mean())}


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
    """Which action entries act (:func:`splitrl.rl_modules.distributions.hybrid_dist_cls`): in a
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


def observation_space(world: EMHWorld) -> gym.spaces.Box:
    return gym.spaces.Box(-np.inf, np.inf, (world.obs_dim,), np.float32)


def decode_actions(world: EMHWorld, actions: np.ndarray) -> dict:
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
    return {"window": disc[:, 0] + 1, "point": per[..., 0], "channel": per[..., 1], "server": per[..., 2],
            "power": power}


def encode_decisions(world: EMHWorld, window=None, point=None, channel=None, server=None, power_w=None) -> np.ndarray:
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
