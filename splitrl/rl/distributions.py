"""Hybrid discrete/continuous action distribution over one flat action vector.

RLlib's ``TorchMultiDistribution`` over ``Tuple`` actions has had batch-shape bugs in ``logp``
(ray issue #53994).  Hybrid agents here therefore act in a flat ``Box``: the first ``D`` entries
are category indices (as floats) of ``D`` categoricals with ``nvec`` choices, the last ``C`` are
unbounded reals from a diagonal Gaussian.  The log-probability is the sum of the ``D``
categorical log-probabilities and the ``C`` Gaussian ones (tested against a manual computation
in ``tests/test_rl_modules.py``).  Distribution inputs: ``sum(nvec)`` logits, ``C`` means, ``C``
log-stds.

Gated entries (``gates``): an entry may act only when another, categorical, entry -- a *window
size* ``W`` encoded as ``W - 1`` -- is at least its slot ``x``; the EMH task window decides per
task slot, and slots ``x >= W`` do not act on the env.  The distribution is then read as the
effective action's: a gated entry's log-probability counts only where it acts (the unused slots
are marginalised out), the entropy is ``H(W) + sum_x P(W > x) H(slot x)`` and the KL divergence
``KL(W) + sum_x P(W > x) KL(slot x)`` (``P`` of the distribution itself), exact for slots drawn
independently of ``W``.  Sampling is unchanged.
"""

from __future__ import annotations

import torch
from ray.rllib.core.distribution.distribution import Distribution
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchDeterministic


class TorchHybrid(Distribution):
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
    def from_logits(cls, logits: torch.Tensor, **kwargs) -> TorchHybrid:
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
        raise NotImplementedError("TorchHybrid has discrete parts: no reparameterised sample")

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

    def kl(self, other: TorchHybrid) -> torch.Tensor:
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


def hybrid_dist_cls(nvec: list[int], num_continuous: int, gates: dict | None = None) -> type[TorchHybrid]:
    """A :class:`TorchHybrid` subclass bound to ``nvec`` categoricals and ``num_continuous`` reals;
    ``gates``: ``{"discrete": [...], "continuous": [...]}``, one ``[j, x]`` or ``None`` per entry."""
    attrs: dict = {"nvec": list(nvec), "num_continuous": int(num_continuous)}
    if gates:
        gd = [None if g is None else (int(g[0]), int(g[1])) for g in gates["discrete"]]
        gc = [None if g is None else (int(g[0]), int(g[1])) for g in gates["continuous"]]
        if len(gd) != len(nvec) or len(gc) != num_continuous:
            raise ValueError(
                f"gates: expected {len(nvec)} discrete and {num_continuous} continuous entries, "
                f"got {len(gd)} and {len(gc)}"
            )
        for g in gd + gc:
            if g is not None and not (0 <= g[0] < len(nvec) and gd[g[0]] is None and 0 <= g[1] < nvec[g[0]]):
                raise ValueError(f"gate {g}: must name an ungated discrete entry and one of its categories")
        attrs.update(gates_discrete=gd, gates_continuous=gc)
    return type("TorchHybridBound", (TorchHybrid,), attrs)
