"""PPO learners whose scheduled coefficients hold for the update they are used in.

RLlib's PPO learner advances its ``entropy_coeff`` schedule in ``after_gradient_based_update``: an
update uses the value of the *previous* iteration's env-step count, and the first update (also the
first after a restore into a new algorithm) the schedule's initial value.  The mixin here sets every
schedule at the lifetime count of sampled env steps *before* the update, so ``[[env_step, value],
...]`` means the same for every learner of the platform.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

from splitrl.rl.fast_learner import FastStepMixin


class ScheduleBeforeUpdateMixin:
    """Set the PPO learner's schedules (RLlib's ``entropy_coeff``, and those a subclass adds to
    :meth:`schedulers`) at the current lifetime env-step count before each update."""

    def schedulers(self, module_id) -> list:
        return [self.entropy_coeff_schedulers_per_module[module_id]]

    def before_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        super().before_gradient_based_update(timesteps=timesteps)
        step = timesteps.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0)
        for module_id in self.module.keys():
            for scheduler in self.schedulers(module_id):
                scheduler.update(timestep=step)


class ScheduledPPOTorchLearner(FastStepMixin, ScheduleBeforeUpdateMixin, PPOTorchLearner):
    """RLlib's PPO learner with its schedules set before each update and the platform's optimizer
    step (:mod:`splitrl.rl.fast_learner`): the central agents' PPO (LyaPPO, LyMDO, ENACHI)."""
