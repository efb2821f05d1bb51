"""The ENACHI world's non-learning policies (paper Section IV-A; design notes section 4.1).

A policy's :meth:`act` gets the batched simulator (:class:`~splitrl.worlds.enachi.system.ENACHISystem`)
and the observation and returns split indices ``(B, N)``; its ``scheme`` says how the frame is sent
(:data:`~splitrl.worlds.enachi.system.SCHEMES`) and :meth:`allocation` may replace Stage I.

* ``ENACHI`` -- the paper's two-tier scheme: greedy split search on Stage I's utility from the
  previous frame's split, Stage II tracking and early stopping.
* ``ProgressiveFTX-L1`` ... ``-L4`` -- ENACHI with the split fixed (the paper's ablation).
* ``Edge-only`` -- the raw input at ``p_max`` on an equal band; ``Device-only`` -- all local.
* ``EFFECT-DNN`` (re-implemented from the paper's one line) -- per frame a drift-plus-penalty of
  ``V_E E_n + Y_n T_n`` with a virtual latency queue ``Y`` (an average-latency constraint, no hard
  deadline), the split and one constant power per device by search on an equal band, every map
  sent in index order without stopping, cut at the deadline.
* ``SC-CAO`` (re-implemented) -- myopic: Stage I's problem with the energy queue replaced by a
  fixed price, the planned maps sent at a constant power, no tracking and no stopping.
* ``Random-split`` (not in the paper) -- a uniform split per device and frame.
"""

from __future__ import annotations

import numpy as np

from splitrl.worlds.base import Policy

from .allocators import LOCAL, ergodic_rate
from .planner import device_fields, search_split


class SplitPolicy(Policy):
    scheme = "enachi"

    def allocation(self, system, split):
        """``(bandwidth, power, fraction)`` replacing Stage I, or ``None``."""
        return None


class ENACHI(SplitPolicy):
    name = "ENACHI"

    def __init__(self, sweeps: int = 1):
        self.sweeps = sweeps
        self.current = None

    def reset(self, sim, seed):
        super().reset(sim, seed)
        self.current = None

    def act(self, system, obs):
        self.current = system.plan(sweeps=self.sweeps, init=self.current)
        return self.current


class Fixed(SplitPolicy):
    def __init__(self, name: str, point: int):
        self.name, self.point = name, point

    def act(self, system, obs):
        idx = np.flatnonzero(system.tables.points == self.point)
        if not len(idx):
            raise ValueError(f"{self.name}: split point {self.point} is not in scenario.split_points")
        return np.full(system.Q.shape, idx[0], dtype=np.int64)


class EdgeOnly(Fixed):
    scheme = "edge_only"

    def __init__(self):
        super().__init__("Edge-only", 0)

    def allocation(self, system, split):
        s = system.scenario
        bw = np.full(system.Q.shape, s.bandwidth_hz / s.num_devices)
        return bw, np.full(system.Q.shape, s.p_max_w), np.ones(system.Q.shape)


class RandomSplit(SplitPolicy):
    name = "Random-split"

    def act(self, system, obs):
        return self.rng.integers(0, system.num_candidates, system.Q.shape)


class EFFECTDNN(SplitPolicy):
    """Per device and frame: ``min_s,p V_E (E_loc + p T_tx) + Y (T_loc + T_tx + T_edge)`` with
    ``T_tx = S / r(p)`` at the mean gain on ``B / N`` (``p`` on a grid of ``power_grid`` points in
    ``(0, p_max]``, the ergodic rate); ``Y <- max(Y + T - T_d, 0)`` with the planned frame time
    (capped at 10 deadlines)."""

    name = "EFFECT-DNN"
    scheme = "effect_dnn"

    def __init__(self, v_energy: float = 1.0, power_grid: int = 64):
        self.v_energy, self.power_grid = v_energy, power_grid
        self.Y = None

    def reset(self, sim, seed):
        super().reset(sim, seed)
        self.Y = np.zeros(sim.Q.shape)

    def act(self, system, obs):
        s, t = system.scenario, system.tables
        B, N = system.Q.shape
        S = len(t.points)
        bw = s.bandwidth_hz / N
        powers = np.linspace(s.p_max_w / self.power_grid, s.p_max_w, self.power_grid)  # (P,)
        # every device alone at every candidate (windows are coupled only at run time)
        split = np.broadcast_to(np.arange(S)[:, None], (S, N))
        f = device_fields(s, t, split, 0.0, system.gain[:, None, :])  # (B, S, N)
        rate = ergodic_rate(powers[:, None, None, None], bw, gain=system.gain[None, :, None, :], noise_psd=s.noise_psd)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_tx = np.where(f["total_bits"][None] > 0, f["total_bits"][None] / rate, 0.0)  # (P, B, S, N)
        t_total = f["t_local_s"][None] + t_tx + np.where(f["kind"][None] == LOCAL, 0.0, f["t_edge_s"][None])
        energy = f["e_local"][None] + powers[:, None, None, None] * np.where(f["kind"][None] == LOCAL, 0.0, t_tx)
        cost = self.v_energy * energy + self.Y[None, :, None, :] * t_total
        cost = np.where(np.isfinite(cost), cost, np.inf)
        flat = cost.reshape(len(powers), B, S, N)
        best_p = flat.argmin(0)  # (B, S, N)
        best_cost = np.take_along_axis(flat, best_p[None], 0)[0]
        choice = best_cost.argmin(1)  # (B, N)
        self.power = np.where(
            t.kind[choice] == LOCAL, 0.0, powers[np.take_along_axis(best_p, choice[:, None, :], 1)[:, 0, :]]
        )
        planned = np.take_along_axis(t_total, best_p[None], 0)[0]  # (B, S, N)
        self.planned_time = np.take_along_axis(planned, choice[:, None, :], 1)[:, 0, :]
        return choice

    def allocation(self, system, split):
        s = system.scenario
        bw = np.full(system.Q.shape, s.bandwidth_hz / s.num_devices)
        return bw, self.power, np.ones(system.Q.shape)

    def observe(self, system, out):
        """The latency queue's update with the frame's planned latency (an average-latency
        constraint: a frame cut at the deadline still counts its whole planned time)."""
        self.Y = np.maximum(
            self.Y + np.minimum(self.planned_time, 10 * system.scenario.deadline_s) - system.scenario.deadline_s, 0.0
        )


class SCCAO(SplitPolicy):
    """Stage I with ``Q`` replaced by the fixed price ``V mu`` (``mu`` in 1/J), greedy split; the
    planned ``ceil(x K)`` maps sent at the constant reference power."""

    name = "SC-CAO"
    scheme = "sc_cao"

    def __init__(self, energy_price: float):
        self.energy_price = energy_price
        self.current = None
        self._plan = None

    def reset(self, sim, seed):
        super().reset(sim, seed)
        self.current = None

    def act(self, system, obs):
        s = system.scenario
        Q = np.full(system.Q.shape, s.lyapunov_v * self.energy_price)
        self.current, self._plan = search_split(s, system.tables, Q, system.gain, init=self.current)
        return self.current

    def allocation(self, system, split):
        st = self._plan
        return st.bandwidth, st.power, st.fraction


def enachi(evaluation: dict) -> ENACHI:
    return ENACHI(evaluation.get("enachi_sweeps", 1))


def progressive(k: int):
    from .scenario import PAPER_SPLITS

    def factory(evaluation: dict) -> Fixed:
        return Fixed(f"ProgressiveFTX-L{k}", PAPER_SPLITS[k])

    return factory


def edge_only(evaluation: dict) -> EdgeOnly:
    return EdgeOnly()


def device_only(evaluation: dict) -> Fixed:
    return Fixed("Device-only", 18)


def random_split(evaluation: dict) -> RandomSplit:
    return RandomSplit()


def effect_dnn(evaluation: dict) -> EFFECTDNN:
    return EFFECTDNN(evaluation.get("effect_dnn_v", 1.0))


def sc_cao(evaluation: dict) -> SCCAO:
    return SCCAO(evaluation.get("sc_cao_energy_price", 0.02))


progressive_l1, progressive_l2, progressive_l3, progressive_l4 = (progressive(k) for k in (1, 2, 3, 4))
