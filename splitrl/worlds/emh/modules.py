"""EMH-PPO on RLlib: per-device agents with a shared embedding network and a shared critic.

``emh-ppo.md`` Section IV-C/D, Fig. 5, Table III.  Layout (one RLModule per device, ``md_0 ..
md_{N-1}``, held by :class:`EMHMultiRLModule`):

* **embedding network** (``phi``): global state -> 512 -> 256, GELU -- *one* ``torch.nn.Module``
  shared by every agent module (``share_encoder: false`` gives each agent its own: MAHPPO);
* **agent networks** (``theta_n``): embedding -> 256 -> 128 -> 64 (ReLU) -> the logits of the
  device's categorical branches (window size, and per task partition point, channel, server) and
  the means of its Gaussian power branch (state-independent learned log-std);
* **critic** (``omega``): global state -> 256 -> 128 -> 64 (ReLU) -> one value per task slot of
  the window, shared by every agent.  RLlib's GAE needs one value per step: the state value is the
  mean of the per-task values (``docs/assumptions/emh.md``).

RLlib builds one optimizer per module and calls each module's ``compute_values``; the shared
parts would be stepped once per agent.  :class:`EMHPPOTorchLearner` registers every parameter
with exactly one optimizer (the shared ones with the first agent's), so one backward pass of the
summed agent losses and one step per optimizer train the encoder and critic once per minibatch.
Its loss is eq. (19): the PPO-clip surrogate of each agent divided by ``W_max``, summed over
agents (RLlib sums module losses), plus the value loss (eq. 20, squared error against GAE targets)
and an optional entropy bonus.  ``window_entropy_coeff`` (in the learner config dict; a value or a
schedule over env steps) adds a bonus on the window-size entries alone (:func:`window_entropy_bonus`);
:class:`HPPOTorchLearner` gives H-PPO's joint agent the same term on top of RLlib's PPO loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.lambda_defaultdict import LambdaDefaultDict
from ray.rllib.utils.schedules.scheduler import Scheduler

from splitrl.rl.distributions import hybrid_dist_cls
from splitrl.rl.fast_learner import FastStepMixin, adam
from splitrl.rl.nets import init_bias, mlp
from splitrl.rl.schedules import ScheduleBeforeUpdateMixin

EMBED = [512, 256]
HEAD = [256, 128, 64]


WINDOW_ENTROPY_KEY = "window_entropy"
WINDOW_ENTROPY_COEFF_KEY = "curr_window_entropy_coeff"


class WindowEntropyMixin(ScheduleBeforeUpdateMixin):
    """Gives a PPO learner ``window_entropy_coeff`` (learner config dict) as a per-module RLlib
    ``Scheduler``: a fixed value or ``[[env_step, value], ...]``, linear in between, at the lifetime
    count of sampled env steps, set before each update (:mod:`splitrl.rl.schedules`)."""

    def build(self) -> None:
        super().build()
        coeff = self.config.learner_config_dict.get("window_entropy_coeff", 0.0)
        self.window_entropy_schedulers = LambdaDefaultDict(
            lambda module_id: Scheduler(fixed_value_or_schedule=coeff, framework="torch", device=self._device)
        )

    def schedulers(self, module_id) -> list:
        return super().schedulers(module_id) + [self.window_entropy_schedulers[module_id]]


def window_entropy_bonus(learner, module_id, dist, mean) -> torch.Tensor:
    """``-window_entropy_coeff * mean(H(W))``: an entropy bonus on the window-size categoricals only
    (zero when the coefficient is 0 or the action has no windows).  Without it a device's window
    head can turn deterministic early (seen at ``W = 1``: one-task windows for the whole run) and
    never try another size again; a bonus on every entry instead flattens the partition-point
    prior and widens the power noise (``docs/assumptions/emh.md``).  The coefficient is the current
    value of the learner's schedule (:class:`WindowEntropyMixin`); both are logged."""
    coeff = learner.window_entropy_schedulers[module_id].get_current_value()
    ent = mean(dist.gate_entropy())
    # a copy of the coefficient: the scheduler later overwrites its tensor in place
    learner.metrics.log_dict({WINDOW_ENTROPY_KEY: ent, WINDOW_ENTROPY_COEFF_KEY: float(coeff)}, key=module_id, window=1)
    return -coeff * ent


def _masked_mean(batch):
    if Columns.LOSS_MASK not in batch:
        return torch.mean
    mask = batch[Columns.LOSS_MASK].float()
    return lambda x: (x * mask).sum() / mask.sum().clamp(min=1.0)


class EMHAgentModule(TorchRLModule, ValueFunctionAPI):
    """One device's agent: embedding (possibly shared) -> actor head; critic (possibly shared).

    ``model_config``: ``discrete_nvec`` (categories of the flat action's discrete entries),
    ``value_outputs`` (per-task values, ``W_max``), optional ``embed``/``head``/``critic`` widths,
    ``init_log_std``, ``init_bias`` (added to the initial discrete logits) and ``action_gates``
    (task slots beyond the chosen window left out of log-probs, entropy and KL).
    """

    def setup(self):
        cfg = self.model_config or {}
        obs_dim = int(np.prod(self.observation_space.shape))
        self.nvec = [int(n) for n in cfg["discrete_nvec"]]
        self.num_continuous = int(np.prod(self.action_space.shape)) - len(self.nvec)
        self.action_dist_cls = hybrid_dist_cls(self.nvec, self.num_continuous, cfg.get("action_gates"))
        embed = list(cfg.get("embed", EMBED))
        head = list(cfg.get("head", HEAD))
        # the embedding ends in an activation: heads read GELU features
        self.encoder = torch.nn.Sequential(mlp([obs_dim, *embed], "gelu"), torch.nn.GELU())
        self.actor = mlp([embed[-1], *head, sum(self.nvec) + self.num_continuous], "relu", out_gain=0.01)
        init_bias(self.actor, cfg.get("init_bias"))
        self.log_std = torch.nn.Parameter(torch.full((self.num_continuous,), float(cfg.get("init_log_std", -0.5))))
        if not self.inference_only:
            self.critic = mlp([obs_dim, *list(cfg.get("critic", HEAD)), int(cfg.get("value_outputs", 1))], "relu")

    def head(self, embedding: torch.Tensor) -> torch.Tensor:
        """The action distribution's inputs from the embedding: logits, then the Gaussian's
        means and (state-independent) log-stds."""
        logits = self.actor(embedding)
        log_std = self.log_std.expand(*logits.shape[:-1], self.num_continuous)
        return torch.cat([logits, log_std], dim=-1)

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self.head(self.encoder(batch[Columns.OBS]))}

    def task_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Per-task values ``(B, W_max)``."""
        return self.critic(obs)

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        return self.task_values(batch[Columns.OBS]).mean(-1)


class EMHMultiRLModule(MultiRLModule):
    """Holds the agents' modules and ties their shared parts to one set of tensors.

    After the sub-modules are built, every agent's ``critic`` (and, with ``share_encoder``, its
    ``encoder``) is replaced by the first agent's, so the parameters exist once.

    Forward passes run the shared parts once for all agents: the agents' observations are
    concatenated, passed through the shared encoder (and, in training, the shared critic, whose
    per-step values go out as ``vf_preds``) in one call, and split again for each agent's own head
    -- one batched matrix product per shared layer instead of one per agent (issue 20).  The
    numbers are those of each agent's own forward pass (``tests/worlds/emh/test_emh_rl.py``).  The
    modules hold no dropout or normalisation, so RLlib's per-agent train/eval mode switches are
    skipped.
    """

    def setup(self):
        super().setup()
        ids = sorted(self._rl_modules)
        if not ids:
            return
        first = self._rl_modules[ids[0]]
        share_encoder = bool((first.model_config or {}).get("share_encoder", True))
        for mid in ids[1:]:
            m = self._rl_modules[mid]
            if share_encoder:
                m.encoder = first.encoder
            if hasattr(first, "critic") and hasattr(m, "critic"):
                m.critic = first.critic

    def _joint_forward(self, batch: dict[str, Any], *, values: bool) -> dict[str, Any]:
        mids = [mid for mid in batch if mid in self]
        if not mids:
            return {}
        subs = [self._rl_modules[mid] for mid in mids]
        obs = [batch[mid][Columns.OBS] for mid in mids]
        sizes = [len(o) for o in obs]
        x = torch.cat(obs) if len(obs) > 1 else obs[0]
        first = subs[0]
        shared = all(s.encoder is first.encoder for s in subs)
        if shared:
            embeddings = first.encoder(x).split(sizes)
        else:
            embeddings = [s.encoder(o) for s, o in zip(subs, obs)]
        out = {mid: {Columns.ACTION_DIST_INPUTS: s.head(e)} for mid, s, e in zip(mids, subs, embeddings)}
        if values and all(getattr(s, "critic", None) is getattr(first, "critic", 0) for s in subs):
            for mid, v in zip(mids, first.task_values(x).mean(-1).split(sizes)):
                out[mid][Columns.VF_PREDS] = v
        return out

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return self._joint_forward(batch, values=True)

    def _forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        with torch.no_grad():
            return self._joint_forward(batch, values=False)

    def _forward_inference(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        with torch.no_grad():
            return self._joint_forward(batch, values=False)

    def shared_parameters(self) -> set[int]:
        """ids of parameters that more than one agent module holds."""
        seen: dict[int, int] = {}
        for m in self._rl_modules.values():
            for p in m.parameters():
                seen[id(p)] = seen.get(id(p), 0) + 1
        return {k for k, v in seen.items() if v > 1}


class EMHPPOTorchLearner(FastStepMixin, WindowEntropyMixin, PPOTorchLearner):
    """PPO learner for :class:`EMHMultiRLModule`: each parameter in exactly one optimizer; eq. (19)."""

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        # each parameter goes to the optimizer of the first module (by sorted id) that holds it
        owner: dict[int, str] = {}
        for mid in sorted(self._module.keys()):
            for p in self.get_parameters(self._module[mid]):
                owner.setdefault(id(p), mid)
        params = [p for p in self.get_parameters(self._module[module_id]) if owner[id(p)] == module_id]
        if not params:
            return
        self.register_optimizer(module_id=module_id, optimizer=adam(params), params=params, lr_or_lr_schedule=config.lr)

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        module = self.module[module_id].unwrapped()
        mean = _masked_mean(batch)
        dist = module.get_train_action_dist_cls().from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
        ratio = torch.exp(dist.logp(batch[Columns.ACTIONS]) - batch[Columns.ACTION_LOGP])
        adv = batch[Postprocessing.ADVANTAGES]
        surrogate = torch.min(adv * ratio, adv * torch.clamp(ratio, 1 - config.clip_param, 1 + config.clip_param))
        w_max = float((module.model_config or {}).get("value_outputs", 1))
        policy_loss = -mean(surrogate) / w_max  # eq. (19)
        values = fwd_out[Columns.VF_PREDS] if Columns.VF_PREDS in fwd_out else module.compute_values(batch)
        vf_loss = mean(torch.clamp((values - batch[Postprocessing.VALUE_TARGETS]) ** 2, 0, config.vf_clip_param))
        entropy = mean(dist.entropy())
        coeff = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        total = policy_loss + config.vf_loss_coeff * vf_loss - coeff * entropy
        total = total + window_entropy_bonus(self, module_id, dist, mean)
        self.metrics.log_dict(
            {POLICY_LOSS_KEY: policy_loss, VF_LOSS_KEY: vf_loss, ENTROPY_KEY: entropy}, key=module_id, window=1
        )
        return total


class HPPOTorchLearner(FastStepMixin, WindowEntropyMixin, PPOTorchLearner):
    """RLlib's PPO loss for H-PPO's joint agent plus :func:`window_entropy_bonus` over its devices'
    window sizes (the same term EMH-PPO's learner adds)."""

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        total = super().compute_loss_for_module(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)
        dist = (
            self.module[module_id]
            .unwrapped()
            .get_train_action_dist_cls()
            .from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
        )
        return total + window_entropy_bonus(self, module_id, dist, _masked_mean(batch))
