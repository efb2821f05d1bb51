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

import math

import torch
from ray.rllib.core.distribution.distribution import Distribution
from ray.rllib.core.distribution.torch.torch_distribution import TorchDeterministic


class TorchHybrid(Distribution):
    """The hybrid distribution, every categorical at once.  The ``D`` entries are grouped by
    their number of categories; each group's logits are one ``(..., G, n)`` tensor, so sampling,
    log-probabilities, entropy and KL are a few tensor ops per group (EMH: 3 groups for 16
    entries) rather than one ``torch.distributions`` object per entry -- those were half of EMH's
    sampling time (issue 20, ``docs/scaling.md``).  Equal to the per-entry definition, values and
    gradients (``tests/test_rl_modules.py`` holds that as the reference)."""

    nvec: list[int] = []
    num_continuous: int = 0
    #: per discrete / continuous entry: ``(j, x)`` -- acts only when discrete entry ``j`` is ``>= x``
    #: -- or ``None`` (always acts); empty: no gating
    gates_discrete: list = []
    gates_continuous: list = []
    #: actions as int64 category indices (a ``MultiDiscrete`` space; only without continuous entries)
    integer_actions: bool = False
    #: the bound class's index tensors per device (:func:`_layout`), built on first use
    _layouts: dict = {}

    def __init__(self, inputs: torch.Tensor):
        super().__init__()
        self.inputs = inputs  # the flat distribution inputs: logits, then means, then log-stds
        self._lay = lay = self._layout(inputs.device)
        d, c = sum(self.nvec), self.num_continuous
        flat = inputs[..., :d]
        #: per group: its logits ``(..., G, n)`` and log-probabilities
        self.logits = [flat.index_select(-1, pos).unflatten(-1, (len(ent), n)) for n, ent, pos in lay["groups"]]
        self.log_probs = [torch.log_softmax(lg, dim=-1) for lg in self.logits]
        self._probs = self._entropies = None  # computed on first use
        self.mean = self.log_std = None
        if c:
            self.mean = inputs[..., d : d + c]
            self.log_std = inputs[..., d + c : d + 2 * c].clamp(-20.0, 2.0)

    @classmethod
    def _layout(cls, device) -> dict:
        lay = cls._layouts.get(str(device))
        if lay is None:
            lay = cls._layouts[str(device)] = _layout(cls.nvec, cls.gates_discrete, cls.gates_continuous, device)
        return lay

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_logits(cls, logits: torch.Tensor, **kwargs) -> TorchHybrid:
        return cls(logits)

    @classmethod
    def required_input_dim(cls, space=None, **kwargs) -> int:
        return sum(cls.nvec) + 2 * cls.num_continuous

    @property
    def probs(self) -> list[torch.Tensor]:
        """Per group, ``(..., G, n)`` category probabilities (kept for reuse only when computed
        with gradients on: a copy made under ``no_grad``, e.g. by :meth:`sample`, would cut the
        graph of a later loss)."""
        if self._probs is not None:
            return self._probs
        probs = [lp.exp() for lp in self.log_probs]
        if torch.is_grad_enabled():
            self._probs = probs
        return probs

    def entry_probs(self, j: int) -> torch.Tensor:
        """``(..., nvec[j])`` category probabilities of discrete entry ``j``."""
        g, k = self._lay["where"][j]
        return self.probs[g][..., k, :]

    def _per_entry(self, per_group: list[torch.Tensor]) -> torch.Tensor:
        """``(..., D)`` in entry order from one ``(..., G)`` tensor per group."""
        x = torch.cat(per_group, dim=-1) if len(per_group) > 1 else per_group[0]
        return x if self._lay["identity"] else x.index_select(-1, self._lay["order"])

    # -- sampling ----------------------------------------------------------------------------
    def _join(self, discrete: torch.Tensor, continuous: torch.Tensor | None) -> torch.Tensor:
        if self.integer_actions:
            return discrete.long()
        parts = [discrete.to(torch.float32)]
        if continuous is not None:
            parts.append(continuous)
        return torch.cat(parts, dim=-1)

    def sample(self, *, sample_shape=None, **kwargs) -> torch.Tensor:
        with torch.no_grad():
            # inverse CDF, one uniform per entry; the clamp guards the last category against
            # cumulative round-off below u
            idx = []
            for (n, _, _), p in zip(self._lay["groups"], self.probs):
                cdf = p.cumsum(-1)
                u = torch.rand(cdf.shape[:-1] + (1,), dtype=cdf.dtype, device=cdf.device)
                idx.append((cdf < u).sum(-1).clamp_(max=n - 1))
            cont = None
            if self.mean is not None:
                cont = self.mean + self.log_std.exp() * torch.randn_like(self.mean)
        return self._join(self._per_entry(idx), cont)

    def rsample(self, *, sample_shape=None, **kwargs):
        raise NotImplementedError("TorchHybrid has discrete parts: no reparameterised sample")

    # -- densities ---------------------------------------------------------------------------
    def _weights(self, idx: torch.Tensor, gated: str) -> torch.Tensor | None:
        """``1[entry j >= x]`` per entry gated by ``(j, x)`` (1 where ungated), from the discrete
        indices ``idx``; ``None`` without gates."""
        lay = self._lay
        if not lay["gated"]:
            return None
        src, thr, mask = lay[f"{gated}_src"], lay[f"{gated}_thr"], lay[f"{gated}_mask"]
        return torch.where(mask, (idx.index_select(-1, src) >= thr).to(self.log_probs[0].dtype), 1.0)

    def _active(self, gated: str) -> torch.Tensor | None:
        """``P(entry j >= x)`` per entry gated by ``(j, x)`` (1 where ungated); ``None`` without gates."""
        lay = self._lay
        if not lay["gated"]:
            return None
        # the tail sums P(entry j >= x) of every gating entry j, side by side, then one gather
        tails = torch.cat([self.entry_probs(j).flip(-1).cumsum(-1).flip(-1) for j in lay["gating"]], dim=-1)
        return torch.where(lay[f"{gated}_mask"], tails.index_select(-1, lay[f"{gated}_tail"]), 1.0)

    @staticmethod
    def _weighted_sum(terms: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        return terms.sum(-1) if weights is None else (terms * weights).sum(-1)

    def _normal_logp(self, x: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((x - self.mean) * torch.exp(-self.log_std)) ** 2 - self.log_std - _HALF_LOG_2PI

    def logp(self, value: torch.Tensor, **kwargs) -> torch.Tensor:
        D = len(self.nvec)
        idx = value[..., :D]
        idx = (idx.round() if idx.is_floating_point() else idx).long()
        lp = self._per_entry(
            [
                lp.gather(-1, idx.index_select(-1, ent).unsqueeze(-1)).squeeze(-1)
                for (_, ent, _), lp in zip(self._lay["groups"], self.log_probs)
            ]
        )
        lp = self._weighted_sum(lp, self._weights(idx, "discrete"))
        if self.mean is not None:
            lp = lp + self._weighted_sum(self._normal_logp(value[..., D:]), self._weights(idx, "continuous"))
        return lp

    def _categorical_entropies(self) -> torch.Tensor:
        """``(..., D)`` entropy of every discrete entry."""
        if self._entropies is not None:
            return self._entropies
        ent = self._per_entry([-(p * lp).sum(-1) for p, lp in zip(self.probs, self.log_probs)])
        if torch.is_grad_enabled():
            self._entropies = ent
        return ent

    def entropy(self) -> torch.Tensor:
        ent = self._weighted_sum(self._categorical_entropies(), self._active("discrete"))
        if self.mean is not None:
            ent = ent + self._weighted_sum(0.5 + _HALF_LOG_2PI + self.log_std, self._active("continuous"))
        return ent

    def gate_entropy(self) -> torch.Tensor:
        """Entropy of the gating entries alone (the window sizes ``W``: every discrete entry that
        another entry is gated by), summed; zeros without gates."""
        ent = self._categorical_entropies()
        if not self._lay["gating"]:
            return torch.zeros_like(ent[..., 0])
        return ent.index_select(-1, self._lay["gating_idx"]).sum(-1)

    def kl(self, other: TorchHybrid) -> torch.Tensor:
        per = [(p * (a - b)).sum(-1) for p, a, b in zip(self.probs, self.log_probs, other.log_probs)]
        kl = self._weighted_sum(self._per_entry(per), self._active("discrete"))
        if self.mean is not None:
            var_ratio = torch.exp(2 * (self.log_std - other.log_std))
            t = ((self.mean - other.mean) * torch.exp(-other.log_std)) ** 2
            kl_c = 0.5 * (var_ratio + t - 1 - torch.log(var_ratio))
            kl = kl + self._weighted_sum(kl_c, self._active("continuous"))
        return kl

    def to_deterministic(self) -> TorchDeterministic:
        modes = self._per_entry([torch.argmax(lg, dim=-1) for lg in self.logits])
        return TorchDeterministic(loc=self._join(modes, self.mean))


_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _layout(nvec, gates_discrete, gates_continuous, device) -> dict:
    """Index tensors of a bound :class:`TorchHybrid`.

    ``groups``: per distinct category count ``n`` (in order of first appearance), ``(n, entries
    (G,), flat logit positions (G * n,))``; ``order``: the permutation from the groups' entries
    side by side back to entry order (``identity`` when there is nothing to permute); ``where``:
    per entry its ``(group, slot)``.  With gates, per discrete/continuous entry its gating entry
    (``*_src``), threshold (``*_thr``), whether it is gated (``*_mask``) and its position among the
    gating entries' tail sums side by side (``*_tail``); ``gating`` the gating entries."""
    offsets = [sum(nvec[:i]) for i in range(len(nvec))]
    counts = list(dict.fromkeys(nvec))
    groups, where, stacked = [], {}, []
    for g, n in enumerate(counts):
        ent = [i for i, m in enumerate(nvec) if m == n]
        for k, i in enumerate(ent):
            where[i] = (g, k)
        stacked += ent
        pos = [offsets[i] + c for i in ent for c in range(n)]
        groups.append((n, torch.tensor(ent, dtype=torch.long), torch.tensor(pos, dtype=torch.long)))
    order = torch.argsort(torch.tensor(stacked, dtype=torch.long))
    lay = {
        "groups": groups,
        "where": where,
        "order": order,
        "identity": stacked == list(range(len(nvec))),
        "gated": bool(gates_discrete),
        "gating": [],
    }
    if gates_discrete:
        gating = sorted({g[0] for g in [*gates_discrete, *gates_continuous] if g is not None})
        tail_offset = {j: sum(nvec[i] for i in gating[:k]) for k, j in enumerate(gating)}
        for name, gates in (("discrete", gates_discrete), ("continuous", gates_continuous)):
            lay[f"{name}_src"] = torch.tensor([0 if g is None else g[0] for g in gates], dtype=torch.long)
            lay[f"{name}_thr"] = torch.tensor([0 if g is None else g[1] for g in gates], dtype=torch.long)
            lay[f"{name}_mask"] = torch.tensor([g is not None for g in gates], dtype=torch.bool)
            lay[f"{name}_tail"] = torch.tensor(
                [0 if g is None else tail_offset[g[0]] + g[1] for g in gates], dtype=torch.long
            )
        lay["gating"] = gating
        lay["gating_idx"] = torch.tensor(gating, dtype=torch.long)

    def move(v):
        if isinstance(v, torch.Tensor):
            return v.to(device)
        if isinstance(v, list):
            return [tuple(move(x) for x in t) if isinstance(t, tuple) else t for t in v]
        return v

    return {k: move(v) for k, v in lay.items()}


def hybrid_dist_cls(nvec: list[int], num_continuous: int, gates: dict | None = None) -> type[TorchHybrid]:
    """A :class:`TorchHybrid` subclass bound to ``nvec`` categoricals and ``num_continuous`` reals;
    ``gates``: ``{"discrete": [...], "continuous": [...]}``, one ``[j, x]`` or ``None`` per entry."""
    if not nvec:
        raise ValueError("nvec: a hybrid distribution needs at least one categorical entry")
    attrs: dict = {"nvec": list(nvec), "num_continuous": int(num_continuous), "_layouts": {}}
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


def multi_categorical_cls(nvec: list[int]) -> type[TorchHybrid]:
    """Independent categoricals with ``nvec`` choices over a ``MultiDiscrete`` space (int64 actions):
    RLlib's ``TorchMultiCategorical``, its numbers, at a few tensor ops per distinct category count
    instead of one ``torch.distributions`` object per entry."""
    cls = hybrid_dist_cls(nvec, 0)
    cls.integer_actions = True
    return cls
