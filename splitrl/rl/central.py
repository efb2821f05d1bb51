"""LyaPPO's central upper-level agent: actor and critic MLPs (Algorithm 1; Section V: 2 x 128).

Separate actor and critic networks (no shared layers, as in the paper).  The actor outputs the
logits of one categorical per (device, service) partition point (``MultiDiscrete``), or, for a
hybrid action space (the joint PPO baseline), those logits followed by the mean of a diagonal
Gaussian over the continuous part with a learned state-independent log-std.

``model_config`` keys: ``hidden`` (list of layer widths, default ``[128, 128]``), ``activation``
(``"tanh"`` or ``"relu"``, default ``"tanh"``), and for hybrid actions ``num_discrete`` and
``discrete_nvec`` (set by :func:`splitrl.worlds.lyappo.algorithms.module_spec`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule

from splitrl.rl.distributions import hybrid_dist_cls, multi_categorical_cls
from splitrl.rl.nets import init_bias, mlp


class CentralPPOModule(TorchRLModule, ValueFunctionAPI):
    """Actor-critic RLModule for a central agent: MultiDiscrete actions (categoricals), a flat Box
    read as a hybrid action (``model_config["discrete_nvec"]``), or a plain Box (a diagonal
    Gaussian with a learned state-independent log-std)."""

    def setup(self):
        cfg = self.model_config or {}
        hidden = list(cfg.get("hidden", [128, 128]))
        act = cfg.get("activation", "tanh")
        obs_dim = int(np.prod(self.observation_space.shape))
        space = self.action_space
        if isinstance(space, gym.spaces.MultiDiscrete):
            self.nvec = [int(n) for n in space.nvec]
            self.num_continuous = 0
            self.action_dist_cls = multi_categorical_cls(self.nvec)
        elif isinstance(space, gym.spaces.Box) and "discrete_nvec" in cfg:
            self.nvec = [int(n) for n in cfg["discrete_nvec"]]
            self.num_continuous = int(np.prod(space.shape)) - len(self.nvec)
            self.action_dist_cls = hybrid_dist_cls(self.nvec, self.num_continuous, cfg.get("action_gates"))
        elif isinstance(space, gym.spaces.Box):
            self.nvec = []
            self.num_continuous = int(np.prod(space.shape))
            self.action_dist_cls = TorchDiagGaussian
        else:
            raise ValueError(f"CentralPPOModule: unsupported action space {space}")
        out = sum(self.nvec) + self.num_continuous
        self.actor = mlp([obs_dim, *hidden, out], act, out_gain=0.01)
        init_bias(self.actor, cfg.get("init_bias"))  # a prior on the initial logits
        if self.num_continuous:
            self.log_std = torch.nn.Parameter(torch.full((self.num_continuous,), float(cfg.get("init_log_std", -0.5))))
        if not self.inference_only:
            self.critic = mlp([obs_dim, *hidden, 1], act, out_gain=1.0)

    def _dist_inputs(self, obs: torch.Tensor) -> torch.Tensor:
        logits = self.actor(obs)
        if self.num_continuous:
            log_std = self.log_std.expand(*logits.shape[:-1], self.num_continuous)
            logits = torch.cat([logits, log_std], dim=-1)
        return logits

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self._dist_inputs(batch[Columns.OBS])}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        return self.critic(batch[Columns.OBS]).squeeze(-1)
