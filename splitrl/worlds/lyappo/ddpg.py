"""DDPG for DDPG-Cov: a compact deep deterministic policy gradient on RLlib's new API stack.

RLlib 2.60 ships no DDPG.  This reuses RLlib's off-policy machinery of SAC (episode replay buffer,
env-runner sampling, learner connector adding ``NEXT_OBS``, soft target-network updates in
``DQNLearner.after_gradient_based_update``) and replaces what makes SAC soft:

* :class:`DDPGModule` -- a deterministic actor ``mu(s) = tanh(MLP(s))`` in ``[-1, 1]^d`` and a
  critic ``Q(s, a)``, with target copies of both (``TargetNetworkAPI``).  Exploration adds
  Gaussian noise ``N(0, sigma^2)`` to ``mu(s)`` and clips to ``[-1, 1]``; inference is ``mu(s)``.
* :class:`DDPGTorchLearner` -- critic loss ``(Q(s, a) - r - gamma^n (1 - done) Q'(s', mu'(s')))^2``
  and actor loss ``-Q(s, mu(s))`` (critic frozen), each with its own Adam optimizer; no entropy
  temperature.

Lillicrap et al. (2016), as used by the DDPG-Cov baseline [26] of the LyaPPO paper.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from ray.rllib.algorithms.sac.sac import SAC, SACConfig
from ray.rllib.algorithms.sac.torch.sac_torch_learner import SACTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import POLICY_LOSS_KEY
from ray.rllib.core.rl_module.apis import QNetAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.metrics import TD_ERROR_KEY

from splitrl.rl.nets import mlp

QF_LOSS_KEY = "qf_loss"


class DDPGModule(TorchRLModule, QNetAPI, TargetNetworkAPI):
    """Deterministic actor + Q critic (+ targets).  ``model_config``: ``hidden``, ``activation``,
    ``exploration_noise`` (std of the Gaussian action noise)."""

    def setup(self):
        cfg = self.model_config or {}
        hidden = list(cfg.get("hidden", [128, 128]))
        act = cfg.get("activation", "relu")
        self.noise = float(cfg.get("exploration_noise", 0.2))
        obs_dim = int(np.prod(self.observation_space.shape))
        self.act_dim = int(np.prod(self.action_space.shape))
        self.actor = mlp([obs_dim, *hidden, self.act_dim], act, out_gain=0.01)
        if not self.inference_only:
            self.critic = mlp([obs_dim + self.act_dim, *hidden, 1], act, out_gain=1.0)

    # -- acting --------------------------------------------------------------------------------
    def mu(self, obs: torch.Tensor, target: bool = False) -> torch.Tensor:
        return torch.tanh((self.target_actor if target else self.actor)(obs))

    def _forward_inference(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {Columns.ACTIONS: self.mu(batch[Columns.OBS])}

    def _forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        a = self.mu(batch[Columns.OBS])
        return {Columns.ACTIONS: torch.clamp(a + self.noise * torch.randn_like(a), -1.0, 1.0)}

    # -- learning ------------------------------------------------------------------------------
    def q(self, obs: torch.Tensor, actions: torch.Tensor, target: bool = False) -> torch.Tensor:
        net = self.target_critic if target else self.critic
        return net(torch.cat([obs, actions], dim=-1)).squeeze(-1)

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        obs, next_obs = batch[Columns.OBS], batch[Columns.NEXT_OBS]
        out = {"q_pred": self.q(obs, batch[Columns.ACTIONS])}
        for p in self.critic.parameters():  # the actor loss must not move the critic
            p.requires_grad_(False)
        out["q_curr"] = self.q(obs, self.mu(obs))
        for p in self.critic.parameters():
            p.requires_grad_(True)
        with torch.no_grad():
            out["q_target_next"] = self.forward_target({Columns.OBS: next_obs})
        return out

    def compute_q_values(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.q(batch[Columns.OBS], batch[Columns.ACTIONS])

    def make_target_networks(self) -> None:
        self.target_actor = copy.deepcopy(self.actor)
        self.target_critic = copy.deepcopy(self.critic)
        for p in list(self.target_actor.parameters()) + list(self.target_critic.parameters()):
            p.requires_grad_(False)

    def get_target_network_pairs(self):
        return [(self.actor, self.target_actor), (self.critic, self.target_critic)]

    def forward_target(self, batch: dict[str, Any], **kwargs) -> torch.Tensor:
        obs = batch[Columns.OBS]
        return self.q(obs, self.mu(obs, target=True), target=True)

    def get_non_inference_attributes(self) -> list[str]:
        return ["critic", "target_actor", "target_critic"]


class DDPGTorchLearner(SACTorchLearner):
    """Two Adam optimizers ("qf": critic, "policy": actor), DDPG losses, soft target updates."""

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        module = self._module[module_id]
        for name, net, lr in (("qf", module.critic, config.critic_lr), ("policy", module.actor, config.actor_lr)):
            params = self.get_parameters(net)
            self.register_optimizer(
                module_id=module_id,
                optimizer_name=name,
                optimizer=torch.optim.Adam(params),
                params=params,
                lr_or_lr_schedule=lr,
            )

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        not_done = 1.0 - batch[Columns.TERMINATEDS].float()
        n_step = batch.get("n_step", 1)
        target = (batch[Columns.REWARDS] + (config.gamma**n_step) * not_done * fwd_out["q_target_next"]).detach()
        weights = batch.get("weights")
        td = fwd_out["q_pred"] - target
        sq = td.pow(2)
        critic_loss = torch.mean(sq * weights) if weights is not None else torch.mean(sq)
        actor_loss = -torch.mean(fwd_out["q_curr"])
        self.metrics.log_value(key=(module_id, TD_ERROR_KEY), value=td.abs().detach(), reduce="item_series")
        self.metrics.log_dict(
            {POLICY_LOSS_KEY: actor_loss, QF_LOSS_KEY: critic_loss, "q_mean": torch.mean(fwd_out["q_pred"])},
            key=module_id,
            window=1,
        )
        self._temp_losses[(module_id, POLICY_LOSS_KEY)] = actor_loss
        self._temp_losses[(module_id, QF_LOSS_KEY)] = critic_loss
        return actor_loss + critic_loss


class DDPGConfig(SACConfig):
    """SAC's off-policy pipeline with the DDPG module and learner (no twin Q, no entropy)."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or DDPG)
        self.twin_q = False
        self.replay_buffer_config = {"type": "EpisodeReplayBuffer", "capacity": 100_000}

    def get_default_learner_class(self):
        return DDPGTorchLearner

    def get_default_rl_module_spec(self):
        return RLModuleSpec(module_class=DDPGModule)


class DDPG(SAC):
    @classmethod
    def get_default_config(cls) -> DDPGConfig:
        return DDPGConfig()
