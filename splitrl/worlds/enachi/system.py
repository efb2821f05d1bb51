"""The ENACHI system (design notes sections 1-2), batched over a leading dimension ``B``: N devices
running ResNet-50 split inference with progressive feature transmission to one edge server.

One :meth:`ENACHISystem.step` is one frame for a split vector:

1. Stage I (:mod:`.planner`): windows (16), bandwidth and reference power per device;
2. Stage II, slot by slot over the window: fading ``h ~ Exp(1)``, the KKT power (25) tracking the
   reference through the virtual power queue (23), cumulative packets (4), maps in importance
   order, and the server's uncertainty estimate stopping a device early;
3. the outcome per task: correct or not (``accuracy_source: digits`` -- a test image of the real
   digits table per task; ``surrogate`` -- a latent difficulty), the energy (7), the energy queue
   update (12).

Every random draw comes from the system's generator: per episode the devices' mean-gain offsets,
per frame the tasks (images or difficulties), per slot the fading.
"""

from __future__ import annotations

import numpy as np

from .accuracy import load_table, surrogate_inverse
from .allocators import LOCAL, PROGRESSIVE, RAW, slot_power
from .physics import LN2, energy_queue_step, maps_received, power_queue_step
from .planner import allocate, device_fields, search_split

#: how a frame is sent: ENACHI (reference tracking, early stop), SC-CAO (the planned maps at a
#: constant power), EFFECT-DNN (every map in index order at a constant power), Edge-only (the raw
#: input at full power)
SCHEMES = ("enachi", "sc_cao", "effect_dnn", "edge_only")
#: per-device figures of a frame in the step's output, each ``(B, N)``
FRAME_KEYS = (
    "correct",
    "energy_j",
    "energy_local_j",
    "energy_tx_j",
    "miss",
    "fraction",
    "stop_slot",
    "split",
    "bandwidth_hz",
    "p_ref_w",
    "Q",
)


class ENACHISystem:
    """``B`` independent copies of the system, stepped together (one frame per :meth:`step`)."""

    def __init__(self, scenario, rng: np.random.Generator, batch: int = 1):
        self.scenario = s = scenario
        self.rng = rng
        self.batch = batch
        self.tables = s.tables()
        self.digits = load_table() if s.accuracy_source == "digits" else None
        N = s.num_devices
        self.Q = np.zeros((batch, N))
        offset_db = rng.uniform(-s.snr_spread_db / 2, s.snr_spread_db / 2, (batch, N))
        self.gain = s.mean_gain * 10 ** (offset_db / 10)  # g_bar per device, fixed for the episode
        self.frame = 0
        self.last = {k: np.zeros((batch, N)) for k in ("energy_j", "correct", "fraction", "stop_slot")}

    @property
    def num_candidates(self) -> int:
        return len(self.tables.points)

    def plan(self, *, method: str = "greedy", sweeps: int = 1, init=None, allowed=None):
        """ENACHI's split search at the current state (the paper's per-frame planner)."""
        return search_split(
            self.scenario, self.tables, self.Q, self.gain, method=method, sweeps=sweeps, init=init, allowed=allowed
        )[0]

    def step(self, split, scheme: str = "enachi", allocation=None) -> dict:
        """One frame with candidate indices ``split`` ``(B, N)``: the figures of :data:`FRAME_KEYS`,
        ``accuracy`` ``(B,)`` (the frame's fraction correct, eq. 10), ``reward`` ``(B,)`` (the
        realised drift-plus-penalty ``(V A - sum Q E) / V`` with the queues before the update).

        ``scheme`` is how the frame is sent (:data:`SCHEMES`); ``allocation`` ``(bandwidth, power,
        fraction)`` replaces Stage I (the baselines that plan otherwise)."""
        s, t = self.scenario, self.tables
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        split = np.asarray(split, dtype=np.int64).reshape(self.batch, s.num_devices)
        if (split < 0).any() or (split >= self.num_candidates).any():
            raise ValueError(f"split indices outside 0..{self.num_candidates - 1}: {split}")
        if allocation is None:
            fields, st = allocate(s, t, split, self.Q, self.gain)
            allocation = (st.bandwidth, st.power, st.fraction)
            planned = st.utility_total
        else:
            fields = device_fields(s, t, split, self.Q, self.gain)
            planned = np.full(self.batch, np.nan)
        bandwidth, p_ref, x_plan = (np.broadcast_to(np.asarray(a, dtype=float), split.shape) for a in allocation)
        out = self._transmit(split, fields, bandwidth, p_ref, x_plan, scheme)
        out["Q"] = self.Q.copy()
        out["accuracy"] = out["correct"].mean(-1)
        out["reward"] = (s.lyapunov_v * out["accuracy"] - (self.Q * out["energy_j"]).sum(-1)) / s.lyapunov_v
        out["utility_planned"] = planned
        self.Q = energy_queue_step(self.Q, out["energy_j"], s.energy_budget_j)
        self.frame += 1
        for k in self.last:
            self.last[k] = np.asarray(out[k], dtype=float)
        self.last["stop_slot"] = out["stop_slot"] / max(s.frame_slots, 1)
        return out

    # ---- Stage II ---------------------------------------------------------------------------------
    def _tasks(self):
        """Per task this frame: a test image index (digits) or a latent difficulty and the
        predictor's error (surrogate)."""
        s, shape = self.scenario, (self.batch, self.scenario.num_devices)
        if self.digits is not None:
            return {"image": self.rng.integers(0, self.digits.splits[0].correct.shape[0], shape)}
        return {"u": self.rng.uniform(0.0, 1.0, shape), "eps": np.abs(self.rng.normal(0.0, s.predictor_noise, shape))}

    def _transmit(self, split, fields, bandwidth, p_ref, x_plan, scheme):
        s, t = self.scenario, self.tables
        kind = t.kind[split]
        num_maps, map_bits = t.num_maps[split], t.map_bits[split]
        total_bits = t.total_bits[split]
        if scheme == "sc_cao":  # exactly the planned ceil(x K) maps, importance order
            total_bits = np.where(kind == PROGRESSIVE, np.ceil(x_plan * num_maps - 1e-9) * map_bits, total_bits)
        slots = fields["slots"]
        sends = (kind != LOCAL) & (slots > 0) & (bandwidth > 0) & (total_bits > 0)
        tasks = self._tasks()
        # the stopping fraction of a progressive task (inf: never confident); only ENACHI stops early
        stop_x = self._stop_fraction(split, tasks) if scheme == "enachi" else np.full(split.shape, np.inf)
        noise = bandwidth * s.noise_psd
        Z = np.zeros_like(bandwidth)
        if s.inner_queue_init == "matched":
            with np.errstate(divide="ignore", invalid="ignore"):
                Z = np.where(
                    sends & (p_ref > 0),
                    s.inner_u * bandwidth * s.slot_s / (map_bits * LN2 * (p_ref + noise / self.gain)),
                    0.0,
                )
        bits = np.zeros_like(bandwidth)
        e_tx = np.zeros_like(bandwidth)
        stopped = ~sends
        stop_slot = np.zeros(bandwidth.shape, dtype=np.int64)
        horizon = int(slots.max()) if sends.any() else 0
        # no tracking: a constant power (the baselines; ENACHI's raw input, all or nothing, goes at
        # p_max until it has arrived, as Stage I planned it)
        constant = np.full(split.shape, scheme in ("sc_cao", "effect_dnn", "edge_only")) | (kind == RAW)
        if scheme == "edge_only":
            p_ref = np.where(sends, s.p_max_w, 0.0)  # full power until the input has arrived
        for slot in range(1, horizon + 1):
            active = ~stopped & (slot <= slots)
            if not active.any():
                break
            g = self.gain * self.rng.exponential(1.0, bandwidth.shape)
            with np.errstate(divide="ignore", invalid="ignore"):
                fixed = np.where(active, p_ref, 0.0)
                cap = np.expm1(
                    np.minimum((total_bits - bits) * LN2 / (bandwidth * s.slot_s), np.log1p(fixed * g / noise))
                )
                fixed = np.where(active & (g > 0), np.minimum(fixed, cap * noise / g), 0.0)
            if constant.all():
                p = fixed
            else:
                p = slot_power.unchecked(  # the frame's inputs are finite by construction
                    Z,
                    g,
                    bandwidth,
                    u_inner=s.inner_u,
                    map_bits=map_bits,
                    slot_s=s.slot_s,
                    noise_psd=s.noise_psd,
                    p_max=s.p_max_w,
                    remaining_bits=total_bits - bits,
                )
                p = np.where(constant, fixed, np.where(active, p, 0.0))
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = np.where(active, bandwidth * np.log1p(p * g / noise) / LN2, 0.0)
            bits = np.minimum(bits + rate * s.slot_s, total_bits)
            e_tx += p * s.slot_s
            Z = np.where(active, power_queue_step(Z, p, p_ref), Z)
            x = np.where(kind == PROGRESSIVE, maps_received(bits, map_bits, num_maps) / np.maximum(num_maps, 1), 0.0)
            complete = bits >= total_bits * (1 - 1e-12)
            done = complete | ((kind == PROGRESSIVE) & (x >= stop_x))
            stop_slot = np.where(active, slot, stop_slot)
            stopped |= active & done
        x = np.where(kind == PROGRESSIVE, maps_received(bits, map_bits, num_maps) / np.maximum(num_maps, 1), 0.0)
        complete = sends & (bits >= total_bits * (1 - 1e-12))
        correct = self._correct(split, kind, x, complete, fields["local_ok"], tasks, scheme)
        early = stopped & sends & (x < 1.0) & (kind == PROGRESSIVE)
        miss = np.where(kind == LOCAL, ~fields["local_ok"], ~(complete | early))
        e_local = fields["e_local"]
        return {
            "correct": correct.astype(float),
            "energy_j": e_local + e_tx,
            "energy_local_j": e_local,
            "energy_tx_j": e_tx,
            "miss": miss.astype(float),
            "fraction": np.where(kind == RAW, complete.astype(float), np.where(kind == LOCAL, 1.0, x)),
            "stop_slot": stop_slot.astype(float),
            "split": split,
            "bandwidth_hz": bandwidth,
            "p_ref_w": p_ref,
        }

    def _stop_fraction(self, split, tasks):
        """The fraction of maps at which the server's uncertainty estimate stops a progressive task
        (``inf``: it never becomes confident and runs to the deadline)."""
        t = self.tables
        kind = t.kind[split]
        out = np.full(split.shape, np.inf)
        if self.digits is not None:
            for j, table in enumerate(self.digits.splits):
                here = (t.digits_split[split] == j) & (kind == PROGRESSIVE)
                if not here.any():
                    continue
                confident = table.entropy_pred[tasks["image"][here]] <= table.entropy_threshold  # (M, P)
                first = np.where(confident.any(1), confident.argmax(1), -1)
                # the stop happens once the maps received reach the first confident sampled count
                frac = np.where(first >= 0, table.ks[np.maximum(first, 0)] / table.num_maps, np.inf)
                out[here] = frac
            return out
        x_star = surrogate_inverse(tasks["u"], t.a[split], t.b[split], t.c[split])
        return np.where(kind == PROGRESSIVE, x_star + tasks["eps"], np.inf)

    def _correct(self, split, kind, x, complete, local_ok, tasks, scheme):
        t = self.tables
        if self.digits is not None:
            img = tasks["image"]
            full = self.digits.splits[0].correct[img, -1]  # the whole model on this image
            correct = np.zeros(split.shape, dtype=bool)
            for j, table in enumerate(self.digits.splits):
                here = (t.digits_split[split] == j) & (kind == PROGRESSIVE)
                if not here.any():
                    continue
                k = table.k_index(x[here])
                ordered = table.correct_index if scheme == "effect_dnn" else table.correct
                correct[here] = np.where(k >= 0, ordered[img[here], np.maximum(k, 0)], False)
        else:
            full = tasks["u"] <= t.a_max
            x_star = surrogate_inverse(tasks["u"], t.a[split], t.b[split], t.c[split])
            if scheme == "effect_dnn":  # index order: no curve for it in this mode, so all maps or nothing
                x_star = np.where(tasks["u"] <= t.a_max, 1.0, np.inf)
            correct = (kind == PROGRESSIVE) & (x >= x_star) & (x > 0)
        correct = np.where(kind == RAW, complete & full, correct)
        return np.where(kind == LOCAL, local_ok & full, correct)
