"""RLlib's multi-agent env runner with its per-step counters summed before they are logged.

``MultiAgentEnvRunner`` logs the sampled env, agent and module step counts with ``2 + 4 x
agents`` ``MetricsLogger.log_value`` calls per sub-env and env step: 14 for EMH-PPO's three
devices, 15 % of its sampling time (``docs/scaling.md``).  :class:`CountingMultiAgentEnvRunner`
adds them up in plain integers and logs each total once at the end of every ``sample`` call, under
the same keys and reductions (``sum`` per iteration, ``lifetime_sum``, the env-step throughput),
so every reported number is unchanged (``tests/worlds/emh/test_emh_rl.py``).

Selected with ``config.env_runners(env_runner_cls=CountingMultiAgentEnvRunner)``; checkpoints
name this import path, keep it.
"""

from __future__ import annotations

from collections import Counter

from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.utils.metrics import (
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    NUM_MODULE_STEPS_SAMPLED,
    NUM_MODULE_STEPS_SAMPLED_LIFETIME,
)


class CountingMultiAgentEnvRunner(MultiAgentEnvRunner):
    """``MultiAgentEnvRunner`` whose sampled-step counters are summed and logged once per sample."""

    def _increase_sampled_metrics(self, num_steps, next_obs, episode):
        counts = self.__dict__.setdefault("_pending_counts", Counter())
        counts["env"] += num_steps
        if episode.is_done:
            counts["episodes"] += 1
        for aid in next_obs:
            counts["agent", str(aid)] += 1
            counts["module", episode.module_for(aid)] += 1
        return num_steps

    def _log_pending_counts(self) -> None:
        counts = self.__dict__.pop("_pending_counts", None)
        if not counts:
            return
        log = self.metrics.log_value
        if counts["env"]:
            log(NUM_ENV_STEPS_SAMPLED, counts["env"], reduce="sum")
            log(NUM_ENV_STEPS_SAMPLED_LIFETIME, counts["env"], reduce="lifetime_sum", with_throughput=True)
        if counts["episodes"]:
            log(NUM_EPISODES, counts["episodes"], reduce="sum")
            log(NUM_EPISODES_LIFETIME, counts["episodes"], reduce="lifetime_sum")
        for key, n in counts.items():
            if isinstance(key, tuple) and key[0] == "agent":
                log((NUM_AGENT_STEPS_SAMPLED, key[1]), n, reduce="sum")
                log((NUM_AGENT_STEPS_SAMPLED_LIFETIME, key[1]), n, reduce="lifetime_sum")
            elif isinstance(key, tuple):
                log((NUM_MODULE_STEPS_SAMPLED, key[1]), n, reduce="sum")
                log((NUM_MODULE_STEPS_SAMPLED_LIFETIME, key[1]), n, reduce="lifetime_sum")

    def _sample(self, **kwargs):
        try:
            return super()._sample(**kwargs)
        finally:
            self._log_pending_counts()
