"""Three coupled FIFO queues per (device, service): local (cycles) -> transmission (bits) -> edge (cycles).

LyaPPO eqs. (7)-(12) at task level.  Each task carries its own stage workloads, fixed by the
partition point in force when it arrived (a reconfigured model serves new tasks; tasks already in
flight finish under the partition they were cut with).  A task enters the first stage with
positive work (``k = 0`` skips the local queue, ``k = K`` skips transmission and edge), is served
first-come-first-served, and moves to the next stage with positive work at the end of the slot in
which it finishes; new arrivals are appended at the end of the slot too, so the backlog seen by
the allocators in slot ``t`` is ``Q(t)`` of eqs. (7)-(9).

Storage is a padded array per stage of shape ``(M, N, L, 4)`` holding, per queued task, its
remaining work in this stage, its transmission bits, its edge cycles and its arrival slot; the
queue's head is index 0.  ``L`` grows by doubling when a queue overflows.
"""

from __future__ import annotations

import numpy as np

LOCAL, TX, EDGE = 0, 1, 2
_REM, _BITS, _EDGE, _ARRIVAL = 0, 1, 2, 3


class TaskPipeline:
    def __init__(self, num_devices: int, num_services: int, capacity: int = 16):
        self.shape = (num_devices, num_services)
        self.tasks = np.zeros((3, num_devices, num_services, capacity, 4))
        self.count = np.zeros((3, num_devices, num_services), dtype=np.int64)

    def copy(self) -> "TaskPipeline":
        new = TaskPipeline.__new__(TaskPipeline)
        new.shape = self.shape
        new.tasks = self.tasks.copy()
        new.count = self.count.copy()
        return new

    @property
    def capacity(self) -> int:
        return self.tasks.shape[3]

    def backlog(self) -> np.ndarray:
        """Remaining work per stage, shape ``(3, M, N)``: cycles, bits, cycles."""
        return self.tasks[..., _REM].sum(axis=-1)

    def num_tasks(self) -> np.ndarray:
        return self.count.copy()

    def _ensure(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        cap = self.capacity
        while cap < needed:
            cap *= 2
        grown = np.zeros(self.tasks.shape[:3] + (cap, 4))
        grown[:, :, :, : self.capacity] = self.tasks
        self.tasks = grown

    def _append(self, stage: int, m, n, rows: np.ndarray) -> None:
        """Append ``rows`` (task records) to queues ``(m[i], n[i])`` of ``stage``, in order."""
        if len(m) == 0:
            return
        flat = m * self.shape[1] + n
        order = np.argsort(flat, kind="stable")
        m, n, rows, flat = m[order], n[order], rows[order], flat[order]
        first = np.r_[True, flat[1:] != flat[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(len(flat)), 0))
        rank = np.arange(len(flat)) - start
        pos = self.count[stage, m, n] + rank
        self._ensure(int(pos.max()) + 1)
        self.tasks[stage, m, n, pos] = rows
        np.add.at(self.count[stage], (m, n), 1)

    def arrive(self, counts: np.ndarray, c_local: np.ndarray, bits: np.ndarray,
               c_edge: np.ndarray, slot: int) -> None:
        """New tasks (``counts`` per (m, n)) with the per-(m, n) workloads of the current partition."""
        if not counts.any():
            return
        m, n = np.nonzero(counts)
        reps = counts[m, n]
        m, n = np.repeat(m, reps), np.repeat(n, reps)
        # Stamped with the time they become available: the start of the next slot.
        rows = np.stack([c_local[m, n], bits[m, n], c_edge[m, n], np.full(len(m), slot + 1.0)], -1)
        self._route(LOCAL, m, n, rows)

    def _route(self, stage: int, m, n, rows) -> None:
        """Send task records to the first stage >= ``stage`` with positive work (else drop: done)."""
        for s in range(stage, 3):
            if len(m) == 0:
                return
            if s > stage:
                rows = rows.copy()
                rows[:, _REM] = rows[:, _BITS] if s == TX else rows[:, _EDGE]
            here = rows[:, _REM] > 0
            self._append(s, m[here], n[here], rows[here])
            m, n, rows = m[~here], n[~here], rows[~here]

    def serve(self, work: np.ndarray, slot: int, tol: float = 1e-9):
        """Serve ``work`` (shape ``(3, M, N)``: cycles, bits, cycles this slot) FIFO in every queue.

        Tasks finishing a stage move on (at the end of the slot).  Returns ``(completed,
        latency_slots)``: tasks that left the system this slot per (m, n) and the sum of their
        latencies in slots (from the end of the arrival slot to the end of this slot).
        """
        completed = np.zeros(self.shape, dtype=np.int64)
        latency = np.zeros(self.shape)
        moving = []
        M, N = self.shape
        rows_idx = np.arange(M * N)
        lanes = np.arange(self.capacity)
        for s in range(3):
            cnt = self.count[s].reshape(-1)
            if not cnt.any():
                continue
            q = self.tasks[s].reshape(M * N, self.capacity, 4)  # a view
            cum = np.cumsum(q[..., _REM], axis=-1)
            total = cum[:, -1]
            served = np.minimum(work[s].reshape(-1), total)
            if not served.any():
                continue
            done = (lanes < cnt[:, None]) & (cum <= (served + tol * total + 1e-9)[:, None])
            b = done.sum(axis=-1)
            # Partial service of the new head.
            prev = np.where(b > 0, cum[rows_idx, np.maximum(b - 1, 0)], 0.0)
            head = np.minimum(b, self.capacity - 1)
            partial = b < cnt
            rem = q[rows_idx, head, _REM]
            q[rows_idx, head, _REM] = np.where(partial, np.maximum(rem - np.maximum(served - prev, 0.0), 0.0), rem)
            if b.any():
                r, l = np.nonzero(done)
                moving.append((s + 1, r // N, r % N, q[r, l].copy()))
                idx = np.minimum(lanes + b[:, None], self.capacity - 1)
                keep = lanes < (cnt - b)[:, None]
                q[...] = np.where(keep[..., None], q[rows_idx[:, None], idx], 0.0)
                self.count[s] = (cnt - b).reshape(M, N)
        for nxt, m, n, rows in moving:
            # Tasks with no further work leave the system.
            rest = np.zeros(len(m), dtype=bool)
            for later in range(nxt, 3):
                rest |= rows[:, _BITS if later == TX else _EDGE] > 0
            fin = ~rest
            if fin.any():
                np.add.at(completed, (m[fin], n[fin]), 1)
                np.add.at(latency, (m[fin], n[fin]), slot + 1 - rows[fin, _ARRIVAL])
            if rest.any() and nxt < 3:
                self._route(nxt, m[rest], n[rest], rows[rest])
        return completed, latency
