"""The EMH-PPO world: N devices, M MEC servers, C shared channels, operator-grained partitioning.

Physics (``emh-ppo.md`` Section III, Table III; equations in :mod:`splitrl.worlds.emh.physics`):
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
action (:mod:`splitrl.rl.distributions`): category indices first -- ``task``: ``W - 1``,
then ``(s - 1, c, m)`` for each of the ``max_window`` task slots; ``time``: ``(s - 1, c, m)`` --
then one real per task slot mapped to power ``P = p_limit * max(sigmoid(a), p_floor)``.
The episode terminates when every task is done (``max_steps`` truncates a time-based episode).
"""

from __future__ import annotations

import numpy as np

from .physics import path_gain, server_load, task_latency_energy, uplink_rates
from .scenario import EMHScenario

#: Step-info keys summed over an episode (``info["episode"]``; RLlib may hand a callback only the
#: episode's last chunk of steps, so the env carries the totals itself).
TOTAL_KEYS = ("reward", "time_s", "energy_j", "tasks", "idle_s", "device_macs_share")


class EMHSystem:
    """Vectorised numpy core of the EMH-PPO world (one episode at a time, all devices at once)."""

    def __init__(self, scenario: EMHScenario):
        self.scenario = s = scenario
        tab = s.table()
        self.share = np.asarray(tab.c, dtype=float)  # device share of the MACs per point
        self.tx_bits = np.asarray(tab.d * tab.input_bits, dtype=float)
        self.tx_bits[-1] = 0.0  # s = S: fully local, nothing sent
        self.total_macs = tab.total_macs
        self.num_points = len(self.share)
        self.l0 = s.resolved_l0()
        self.rng = np.random.default_rng()
        N = s.num_devices
        self.remaining = np.zeros(N, dtype=np.int64)
        self.distance = np.ones(N)
        self.shadow_db = np.zeros(N)
        self.busy = np.zeros(N)  # time-based MDP: time already committed beyond the slot start
        self._virtual: dict[str, int] = {}  # points added by add_virtual_point, by name
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
        share, bits = self.share[: self.num_points], self.tx_bits[: self.num_points]
        t_tx = bits / rate
        latency = s.local_factor * self.l0 * share + t_tx + self.l0 * (1.0 - share)
        energy = p * t_tx + s.energy_per_mmac_j * share * self.total_macs / 1e6
        return latency + s.energy_weight / s.num_devices * energy

    def pareto_points(self) -> list[int]:
        """0-based indices of the real points on the Pareto front of (device MAC share, bits
        sent), one per distinct pair, ordered by share.  A task's latency and energy depend on
        its point only through that pair, increasingly in both (eqs. 2-3 with ``local_factor``
        above the server load), so a point off the front never helps."""
        share = self.share[: self.num_points]
        bits = self.tx_bits[: self.num_points]
        keep: dict[tuple[float, float], int] = {}
        for i, (a, b) in enumerate(zip(share, bits)):
            if not np.any((share <= a) & (bits <= b) & ((share < a) | (bits < b))):
                keep.setdefault((float(a), float(b)), i)
        return [keep[k] for k in sorted(keep)]

    def add_virtual_point(self, name: str, share: float, tx_bits: float) -> int:
        """Append a point that is not a cut of the model (e.g. AgileNN's feature split) for
        hand-written policies; agents' action spaces keep the ``num_points`` real ones.
        Returns its 0-based index (the same index for the same name)."""
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
            gain = path_gain(
                self.distance, self.shadow_db, ref_distance_m=s.ref_distance_m, exponent=s.path_loss_exponent
            )
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
        gain = path_gain(self.distance, self.shadow_db, ref_distance_m=s.ref_distance_m, exponent=s.path_loss_exponent)
        # devices on the last axis for the physics helpers: (X, N)
        rate = uplink_rates(
            power.T, gain[None, :], channel.T, bandwidth_hz=s.bandwidth_hz, noise_w=s.noise_w, active=sending.T
        ).T
        load = server_load(server.T, (active & (share < 1.0)).T).T
        lat, energy, _ = task_latency_energy(
            share,
            bits,
            rate,
            power,
            load,
            l0_s=self.l0,
            local_factor=s.local_factor,
            total_macs=self.total_macs,
            zeta_j_per_mmac=s.energy_per_mmac_j,
        )
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
        return {
            "reward": reward,
            "time_s": T,
            "energy_j": E,
            "tasks": tasks,
            "idle_s": float(idle.sum()),
            "device_share": float(share.sum() / max(tasks, 1)),
            "window": w_mean,
        }

    def step_slot(self, point, channel, server, power) -> dict:
        """One slot of the time-based MDP; arguments ``(N,)`` (one decision per device)."""
        s = self.scenario
        tau = s.slot_seconds
        N = s.num_devices
        busy_before = (self.remaining > 0) | (self.busy > 0)
        # the decision's latency/energy per task, with every device that starts tasks this slot active
        starts = (self.remaining > 0) & (self.busy < tau)
        lat, energy, share = self.evaluate_tasks(
            point[:, None], channel[:, None], server[:, None], power[:, None], starts[:, None]
        )
        lat, energy, share = lat[:, 0], energy[:, 0], share[:, 0]
        t = self.busy.copy()
        finish = np.where(busy_before, t, 0.0)  # when each device's last task ends, from slot start
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
        return {
            "reward": reward,
            "time_s": elapsed if busy_before.any() else 0.0,
            "energy_j": E,
            "tasks": tasks,
            "idle_s": 0.0,
            "device_share": float((share * started).sum() / max(tasks, 1)),
            "window": float(started.mean()),
        }
