"""The hybrid distribution as first written (splitrl 34cb287): one ``torch.distributions`` object per
categorical entry.  Kept as the reference the vectorised :class:`splitrl.rl.distributions.TorchHybrid`
must equal (values and gradients, ``tests/test_rl_modules.py``)."""

from __future__ import annotations

import torch
from ray.rllib.core.distribution.distribution import Distribution
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchDeterministic


class ReferenceHybrid(Distribution):
    nvec: list[int] = []
    num_continuous: int = 0
    #: per discrete / continuous entry: ``(j, x)`` -- acts only when discrete entry ``j`` is ``>= x``
    #: -- or ``None`` (always acts); empty: no gating
    gates_discrete: list = []
    gates_continuous: list = []

    def __init__(self, categoricals: list[TorchCategorical], normal: torch.distributions.Normal | None):
        super().__init__()
        self._cats = categoricals
        self._normal = normal

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_logits(cls, logits: torch.Tensor, **kwargs) -> ReferenceHybrid:
        d = sum(cls.nvec)
        c = cls.num_continuous
        cats = [TorchCategorical(logits=lg) for lg in torch.split(logits[..., :d], cls.nvec, dim=-1)]
        normal = None
        if c:
            mean, log_std = logits[..., d : d + c], logits[..., d + c : d + 2 * c]
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
        return self._join([c.sample() for c in self._cats], self._normal.sample() if self._normal is not None else None)

    def rsample(self, *, sample_shape=None, **kwargs):
        raise NotImplementedError("ReferenceHybrid has discrete parts: no reparameterised sample")

    # -- densities ---------------------------------------------------------------------------
    def logp(self, value: torch.Tensor, **kwargs) -> torch.Tensor:
        d = len(self.nvec)
        idx = value[..., :d].round().long()
        lp = torch.stack([cat.logp(idx[..., i]) for i, cat in enumerate(self._cats)], dim=-1)
        lp = self._gated_sum(lp, self.gates_discrete, lambda j, x: (idx[..., j] >= x).to(lp.dtype))
        if self._normal is not None:
            lpc = self._normal.log_prob(value[..., d:])
            lp = lp + self._gated_sum(lpc, self.gates_continuous, lambda j, x: (idx[..., j] >= x).to(lpc.dtype))
        return lp

    def _gated_sum(self, terms: torch.Tensor, gates: list, weight) -> torch.Tensor:
        """``sum_i weight_i * terms[..., i]`` with ``weight = 1`` for ungated entries and
        ``weight(j, x)`` for entries gated by ``(j, x)``."""
        if not gates:
            return terms.sum(-1)
        cols = [terms[..., i] if g is None else terms[..., i] * weight(*g) for i, g in enumerate(gates)]
        return torch.stack(cols, dim=-1).sum(-1)

    def _active_prob(self, j: int, x: int) -> torch.Tensor:
        """``P(entry j >= x)`` under this distribution."""
        return torch.softmax(self._cats[j].logits, dim=-1)[..., x:].sum(-1)

    def entropy(self) -> torch.Tensor:
        ent = self._gated_sum(
            torch.stack([c.entropy() for c in self._cats], dim=-1), self.gates_discrete, self._active_prob
        )
        if self._normal is not None:
            ent = ent + self._gated_sum(self._normal.entropy(), self.gates_continuous, self._active_prob)
        return ent

    def gate_entropy(self) -> torch.Tensor:
        """Entropy of the gating entries alone (the window sizes ``W``: every discrete entry that
        another entry is gated by), summed; zeros without gates."""
        gating = sorted({g[0] for g in [*self.gates_discrete, *self.gates_continuous] if g is not None})
        if not gating:
            return torch.zeros_like(self._cats[0].logits[..., 0])
        return torch.stack([self._cats[j].entropy() for j in gating], dim=-1).sum(-1)

    def kl(self, other: ReferenceHybrid) -> torch.Tensor:
        kl = self._gated_sum(
            torch.stack([a.kl(b) for a, b in zip(self._cats, other._cats)], dim=-1),
            self.gates_discrete,
            self._active_prob,
        )
        if self._normal is not None:
            kl = kl + self._gated_sum(
                torch.distributions.kl_divergence(self._normal, other._normal), self.gates_continuous, self._active_prob
            )
        return kl

    def to_deterministic(self) -> TorchDeterministic:
        modes = [torch.argmax(c.logits, dim=-1) for c in self._cats]
        return TorchDeterministic(loc=self._join(modes, self._normal.mean if self._normal is not None else None))


def reference_dist_cls(bound) -> type[ReferenceHybrid]:
    """The reference twin of a bound :class:`~splitrl.rl.distributions.TorchHybrid` class."""
    attrs = {k: getattr(bound, k) for k in ("nvec", "num_continuous", "gates_discrete", "gates_continuous")}
    return type("ReferenceHybridBound", (ReferenceHybrid,), attrs)
