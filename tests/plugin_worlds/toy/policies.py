"""The toy world's baselines."""

from __future__ import annotations

import numpy as np

from splitrl.worlds.base import Policy


class Fixed(Policy):
    def __init__(self, name: str, choice: int):
        self.name, self.choice = name, choice

    def act(self, env, obs):
        return np.full(env.s.num_devices, self.choice, dtype=np.int64)


class RandomChoice(Policy):
    name = "Random"

    def act(self, env, obs):
        return self.rng.integers(0, 2, env.s.num_devices)


def local_only(evaluation):
    return Fixed("Local-only", 0)


def edge_only(evaluation):
    return Fixed("Edge-only", 1)


def random_choice(evaluation):
    return RandomChoice()
