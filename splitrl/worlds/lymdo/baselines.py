"""Non-learning baselines of the LyMDO world (Sec. V-B), all with the exact allocators.

A baseline's :meth:`act` gets the simulator (:class:`~splitrl.worlds.lymdo.system.LyMDOSystem`,
batch 1) and the observation and returns the partition points ``(N,)`` (``action_mode =
"index"``).  ``Local`` runs every model on its UE, ``Edge`` offloads the raw input, ``Random``
draws every point uniformly from its own generator (the same draws at every arrival rate, as the
paper notes), and ``Greedy-DPP`` (not in the paper) minimises the slot's drift-plus-penalty P2
over the points by coordinate descent: the myopic Lyapunov policy a learner should at least match.
"""

from __future__ import annotations

import numpy as np

from splitrl.worlds.base import Policy


class PartitionPolicy(Policy):
    """A baseline that returns partition indices (the allocators do the rest)."""

    action_mode = "index"


class Local(PartitionPolicy):
    name = "Local"

    def act(self, system, obs):
        return system.num_points - 1


class Edge(PartitionPolicy):
    name = "Edge"

    def act(self, system, obs):
        return np.zeros(system.scenario.num_ues, dtype=np.int64)


class RandomPartition(PartitionPolicy):
    name = "Random"

    def act(self, system, obs):
        return self.rng.integers(0, system.num_points)


class GreedyDPP(PartitionPolicy):
    """Every slot, coordinate descent over the UEs (``sweeps`` passes; every point of one UE with
    the others fixed, all candidates evaluated in one batched allocator call), started from the
    previous slot's choice; ties keep the current point."""

    name = "Greedy-DPP"

    def __init__(self, sweeps: int = 3):
        self.sweeps = sweeps
        self.current = None

    def reset(self, sim, seed):
        super().reset(sim, seed)
        self.current = np.asarray(sim.num_points) - 1

    def act(self, system, obs):
        current = self.current.copy()
        snr = system.snr()
        for _ in range(self.sweeps):
            changed = False
            for n in range(system.scenario.num_ues):
                cands = np.repeat(current[None], system.num_points[n], axis=0)
                cands[:, n] = np.arange(system.num_points[n])
                cost = system.evaluate(cands, *system.allocate(cands, snr=snr), snr=snr)["objective"]
                best = np.flatnonzero(cost <= cost.min() + 1e-12 * abs(cost.min()))
                if current[n] not in best:
                    current[n] = best[0]
                    changed = True
            if not changed:
                break
        self.current = current
        return current


def local(evaluation: dict) -> Policy:
    return Local()


def edge(evaluation: dict) -> Policy:
    return Edge()


def random_partition(evaluation: dict) -> Policy:
    return RandomPartition()


def greedy_dpp(evaluation: dict) -> Policy:
    return GreedyDPP(evaluation["greedy_sweeps"])
