"""Non-learning partition policies over the LyaPPO env; every one uses the exact allocators.

A policy (:class:`~splitrl.worlds.base.Policy`) is called once per partition-adjustment period with
the (unwrapped) :class:`~splitrl.worlds.lyappo.env.LyaPPOEnv` and returns the ``MultiDiscrete``
action.  All randomness comes from a generator seeded in :meth:`Policy.reset`.
"""

from __future__ import annotations

import numpy as np

from splitrl.worlds.base import Policy


class FixedPolicy(Policy):
    """Fix-Cov: partition points fixed a priori ("mid" of each model's table by default)."""

    name = "Fix-Cov"

    def __init__(self, partition="mid", name: str | None = None):
        self.partition = partition
        if name:
            self.name = name

    def act(self, env, obs):
        nv = env.action_space.nvec
        M = env.scenario.num_devices
        if isinstance(self.partition, str):
            top = nv - 1
            return {"mid": top // 2, "local": top, "edge": np.zeros_like(top)}[self.partition]
        return np.tile(np.asarray(self.partition, dtype=np.int64), M)


class RandomPolicy(Policy):
    """Random-Cov: uniformly random partition points every period."""

    name = "Random-Cov"

    def act(self, env, obs):
        return self.rng.integers(0, env.action_space.nvec)


class GreedyPolicy(Policy):
    """Greedy-Cov: coordinate search over partition points with look-ahead simulation.

    For each (device, service) in turn, every candidate partition point is simulated for
    ``lookahead`` periods from the current state on copies of the system driven by common random
    numbers drawn from the policy's own generator (it never sees the env's future); the point of
    least cost is kept (ties keep the current point).  The cost is the negative reward over the
    look-ahead plus, with ``terminal="drain"``, the backlog penalty still owed for the work left
    in the system: a queue owing ``W`` seconds of work (its backlog plus its share of the tasks
    still upstream) pays at least ``w2 b W / P`` per period while it drains at full capacity,
    ``w2 b W^2 / (2 P^2)`` in all (the reward's backlog term integrated; quadratic like the
    Lyapunov function).  Without it a one-period look-ahead is
    blind to congestion and piles work onto the cheapest-looking queue (docs/assumptions/lyappo.md).
    """

    name = "Greedy-Cov"

    def __init__(self, lookahead: int = 1, sweeps: int = 1, terminal: str = "drain"):
        self.lookahead = lookahead
        self.sweeps = sweeps
        self.terminal = terminal

    @staticmethod
    def drain_cost(env, system) -> np.ndarray:
        """Backlog penalty of draining each batch element's queues at full capacity, ``(B,)``."""
        s = env.scenario
        P = s.period_seconds
        w = np.stack(env.features.seconds(*system.pipeline.committed_backlog()))  # (3, B, M, N)
        beta = np.asarray(s.backlog_weights)[:, None, None, None]
        return s.reward_backlog_weight * (beta * w**2).sum(axis=(0, 2, 3)) / (2 * P**2)

    def act(self, env, obs):
        system, features = env.system, env.features
        M, N = env.scenario.num_devices, env.scenario.services_per_device
        nv = env.action_space.nvec.reshape(M, N)
        current = system.partition[0].copy()
        for _ in range(self.sweeps):
            for m in range(M):
                for n in range(N):
                    K = int(nv[m, n])
                    cands = np.repeat(current[None], K, axis=0)
                    cands[:, m, n] = np.arange(K)
                    sim = system.replicate(K, np.random.default_rng(self.rng.integers(2**63)))
                    cost = np.zeros(K)
                    for _ in range(self.lookahead):
                        cost -= features.reward(sim.run_period(cands)["slots"])[0]
                    if self.terminal == "drain":
                        cost += self.drain_cost(env, sim)
                    best = np.flatnonzero(cost <= cost.min() + 1e-12 * abs(cost.min()))
                    if current[m, n] not in best:
                        current[m, n] = best[0]
        return current.reshape(-1)


# Factories of the world's baselines (``LyaPPOWorld.baselines``), configured from the evaluation section.
def fix_cov(evaluation: dict) -> Policy:
    return FixedPolicy(evaluation["fixed_partition"])


def random_cov(evaluation: dict) -> Policy:
    return RandomPolicy()


def local_only(evaluation: dict) -> Policy:
    return FixedPolicy("local", name="Local-only")


def edge_only(evaluation: dict) -> Policy:
    return FixedPolicy("edge", name="Edge-only")


def greedy_cov(evaluation: dict) -> Policy:
    return GreedyPolicy(
        evaluation["greedy_lookahead_periods"], evaluation["greedy_sweeps"], evaluation["greedy_terminal_cost"]
    )
