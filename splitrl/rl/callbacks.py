"""The episode callback of a single-agent world: per-episode means of step infos as metrics."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback


class EpisodeMeans(RLlibCallback):
    """Logs, at every episode's end, the mean over its steps of the info ``key`` as the metric
    ``name`` for every ``name: key`` of :attr:`metrics` (a subclass declares them; steps whose info
    lacks the first key, such as the reset's, are skipped)."""

    metrics: Mapping[str, str] = {}

    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs) -> None:
        first = next(iter(self.metrics.values()), None)
        infos = [i for i in episode.get_infos() if isinstance(i, dict) and first in i]
        if not infos or metrics_logger is None:
            return
        for name, key in self.metrics.items():
            metrics_logger.log_value(name, float(np.mean([i[key] for i in infos])), reduce="mean", window=100)
