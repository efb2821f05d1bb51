"""Hybrid discrete/continuous action distribution over one flat action vector.

RLlib's ``TorchMultiDistribution`` over ``Tuple`` actions has had batch-shape bugs in ``logp``
(ray issue #53994).  Hybrid agents here therefore act in a flat ``Box``: the first ``D`` entries
are category indices (as floats) of ``D`` categoricals with ``nvec`` choices, the last ``C`` are
unbounded reals from a diagonal Gaussian.  The log-probability is the sum of the ``D``
categorical log-probabilities and the ``C`` Gaussian ones (tested against a manual computation
in ``tests/test_rl_modules.py``).  Distribution inputs: ``sum(nvec)`` logits, ``C`` means, ``C``
log-stds.
"""

from __future__ import annotations

import torch
from ray.rllib.core.distribution.distribution import Distribution
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchDeterministic


class TorchHybrid(Distribution):
    nvec: list[int] = []
    num_continuous: int = 0

    def __init__(self, categoricals: list[TorchCategorical], normal: torch.distributions.Normal | None):
        super().__init__()
        self._cats = categoricals
        self._normal = normal

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_logits(cls, logits: torch.Tensor, **kwargs) -> "TorchHybrid":
        d = sum(cls.nvec)
        c = cls.num_continuous
        cats = [TorchCategorical(logits=lg) for lg in torch.split(logits[..., :d], cls.nvec, dim=-1)]
        normal = None
        if c:
            mean, log_std = logits[..., d:d + c], logits[..., d + c:d + 2 * c]
            normal = torch.distributions.Normal(mean, torch.exp(log_std.clamp(-20.0, 2.0)))
        return cls(cats, normal)

    @classmethod
    def required_input_dim(cls, space=None, **kwargs) -> int:
        return sum(cls.nvec) + 2 * cls.num_continuous

    # -- sampling ----------------------------------------------------------------------------
    def _join(self, discrete: list[torch.Tensor], continuous: torch.Tensor | None) -> torch.Tensor:
        parts = [torch.stack(discrete, dim=-1).to(torch.float32)]
        if continuous is not None:
            parts.append(continuous)
        return torch.cat(parts, dim=-1)

    def sample(self, *, sample_shape=None, **kwargs) -> torch.Tensor:
        return self._join([c.sample() for c in self._cats],
                          self._normal.sample() if self._normal is not None else None)

    def rsample(self, *, sample_shape=None, **kwargs):
        raise NotImplementedError("TorchHybrid has discrete parts: no reparameterised sample")

    # -- densities ---------------------------------------------------------------------------
    def logp(self, value: torch.Tensor, **kwargs) -> torch.Tensor:
        d = len(self.nvec)
        idx = value[..., :d].round().long()
        lp = torch.stack([cat.logp(idx[..., i]) for i, cat in enumerate(self._cats)], dim=-1).sum(-1)
        if self._normal is not None:
            lp = lp + self._normal.log_prob(value[..., d:]).sum(-1)
        return lp

    def entropy(self) -> torch.Tensor:
        ent = torch.stack([c.entropy() for c in self._cats], dim=-1).sum(-1)
        if self._normal is not None:
            ent = ent + self._normal.entropy().sum(-1)
        return ent

    def kl(self, other: "TorchHybrid") -> torch.Tensor:
        kl = torch.stack([a.kl(b) for a, b in zip(self._cats, other._cats)], dim=-1).sum(-1)
        if self._normal is not None:
            kl = kl + torch.distributions.kl_divergence(self._normal, other._normal).sum(-1)
        return kl

    def to_deterministic(self) -> TorchDeterministic:
        modes = [torch.argmax(c.logits, dim=-1) for c in self._cats]
        return TorchDeterministic(loc=self._join(modes, self._normal.mean if self._normal is not None else None))


def hybrid_dist_cls(nvec: list[int], num_continuous: int) -> type[TorchHybrid]:
    """A :class:`TorchHybrid` subclass bound to ``nvec`` categoricals and ``num_continuous`` reals."""
    return type("TorchHybridBound", (TorchHybrid,), {"nvec": list(nvec), "num_continuous": int(num_continuous)})
