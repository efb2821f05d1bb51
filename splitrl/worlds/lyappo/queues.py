"""Three coupled FIFO queues per (device, service): local (cycles) -> transmission (bits) -> edge (cycles).

LyaPPO eqs. (7)-(12) at task level.  Each task carries its own stage workloads, fixed by the
partition point in force when it arrived (a reconfigured model serves new tasks; tasks already in
flight finish under the partition they were cut with).  A task enters the first stage with
positive work (``k = 0`` skips the local queue, ``k = K`` skips transmission and edge), is served
first-come-first-served, and moves to the next stage with positive work at the end of the slot in
which it finishes; new arrivals are appended at the end of the slot too, so the backlog seen by
the allocators in slot ``t`` is ``Q(t)`` of eqs. (7)-(9).

The pipeline holds a queue triple for every index of an arbitrary ``shape`` (``(M, N)`` for one
env, ``(B, M, N)`` for a batch).  Storage is a padded array per stage of shape ``(R, L, 4)`` with
``R = prod(shape)`` rows holding, per queued task, its remaining work in this stage, its
transmission bits, its edge cycles and the time it became available (in slots); the head of a
queue is lane 0.  ``L`` grows by doubling when a queue overflows.
"""

from __future__ import annotations

import numpy as np

LOCAL, TX, EDGE = 0, 1, 2
_REM, _BITS, _EDGE, _ARRIVAL = 0, 1, 2, 3
_NEXT_WORK = {TX: _BITS, EDGE: _EDGE}


class TaskPipeline:
    def __init__(self, shape: tuple[int, ...], capacity: int = 8):
        self.shape = tuple(shape)
        rows = int(np.prod(self.shape))
        self.tasks = np.zeros((3, rows, capacity, 4))
        self.count = np.zeros((3, rows), dtype=np.int64)
        self._rows = np.arange(rows)

    def broadcast(self, batch: int) -> TaskPipeline:
        """``batch`` copies of this pipeline stacked on a new leading axis (shape ``(batch, *shape)``)."""
        new = TaskPipeline((batch,) + self.shape, capacity=self.capacity)
        new.tasks = np.tile(self.tasks, (1, batch, 1, 1))
        new.count = np.tile(self.count, (1, batch))
        return new

    @property
    def capacity(self) -> int:
        return self.tasks.shape[2]

    def backlog(self) -> np.ndarray:
        """Remaining work per stage, shape ``(3, *shape)``: cycles, bits, cycles."""
        return self.tasks[..., _REM].sum(axis=-1).reshape((3,) + self.shape)

    def committed_backlog(self) -> np.ndarray:
        """Work each stage still owes, shape ``(3, *shape)``: its own backlog plus the stage's share
        of the tasks still queued upstream (their bits / edge cycles have not entered it yet)."""
        t = self.tasks
        out = t[..., _REM].sum(axis=-1)
        out[TX] += t[LOCAL, ..., _BITS].sum(axis=-1)
        out[EDGE] += t[LOCAL, ..., _EDGE].sum(axis=-1) + t[TX, ..., _EDGE].sum(axis=-1)
        return out.reshape((3,) + self.shape)

    def num_tasks(self) -> np.ndarray:
        """Tasks queued per stage, shape ``(3, *shape)`` (``a^l, a^t, a^e`` of eqs. 10-12)."""
        return self.count.reshape((3,) + self.shape).copy()

    def _ensure(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        cap = self.capacity
        while cap < needed:
            cap *= 2
        grown = np.zeros(self.tasks.shape[:2] + (cap, 4))
        grown[:, :, : self.capacity] = self.tasks
        self.tasks = grown

    def _append(self, stage: int, rows_idx: np.ndarray, records: np.ndarray) -> None:
        """Append ``records`` to the queues ``rows_idx`` of ``stage``, keeping their order."""
        if len(rows_idx) == 0:
            return
        order = np.argsort(rows_idx, kind="stable")
        rows_idx, records = rows_idx[order], records[order]
        first = np.r_[True, rows_idx[1:] != rows_idx[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(len(rows_idx)), 0))
        pos = self.count[stage, rows_idx] + (np.arange(len(rows_idx)) - start)
        self._ensure(int(pos.max()) + 1)
        self.tasks[stage, rows_idx, pos] = records
        np.add.at(self.count[stage], rows_idx, 1)

    def _route(self, stage: int, rows_idx, records) -> None:
        """Send task records to the first stage >= ``stage`` with positive work."""
        for s in range(stage, 3):
            if len(rows_idx) == 0:
                return
            if s != LOCAL:  # a record's remaining work becomes this stage's workload
                records = records.copy()
                records[:, _REM] = records[:, _NEXT_WORK[s]]
            here = records[:, _REM] > 0
            self._append(s, rows_idx[here], records[here])
            rows_idx, records = rows_idx[~here], records[~here]

    def arrive(self, counts: np.ndarray, c_local: np.ndarray, bits: np.ndarray, c_edge: np.ndarray, slot: int) -> None:
        """``counts`` new tasks per queue (arrays of ``shape``) arriving during ``slot``.

        Each gets the workloads of its queue's current partition and is stamped with the time it
        becomes available: the start of slot ``slot + 1``.
        """
        counts = counts.reshape(-1)
        if not counts.any():
            return
        rows_idx = np.repeat(self._rows, counts)
        records = np.stack(
            [
                c_local.reshape(-1)[rows_idx],
                bits.reshape(-1)[rows_idx],
                c_edge.reshape(-1)[rows_idx],
                np.full(len(rows_idx), slot + 1.0),
            ],
            -1,
        )
        self._route(LOCAL, rows_idx, records)

    def serve(self, work: np.ndarray, slot: int, tol: float = 1e-9):
        """Serve ``work`` (shape ``(3, *shape)``: cycles, bits, cycles in this slot) FIFO everywhere.

        Tasks finishing a stage move on at the end of the slot.  Returns ``(completed,
        latency_slots)`` of ``shape``: tasks that left the system in this slot and the sum of
        their latencies in slots (from becoming available to the end of this slot).
        """
        R = len(self._rows)
        completed = np.zeros(R, dtype=np.int64)
        latency = np.zeros(R)
        work = work.reshape(3, R)
        lanes = np.arange(self.capacity)
        moving = []
        for s in range(3):
            cnt = self.count[s]
            if not cnt.any():
                continue
            served = work[s]
            active = np.nonzero(served > 0)[0]
            if len(active) == 0:
                continue
            q = self.tasks[s, active]  # (A, L, 4) copy of the active queues
            cnt_a, served = cnt[active], served[active]
            cum = np.cumsum(q[..., _REM], axis=-1)
            total = cum[:, -1]
            served = np.minimum(served, total)
            done = (lanes < cnt_a[:, None]) & (cum <= (served + tol * total + 1e-9)[:, None])
            b = done.sum(axis=-1)
            ar = np.arange(len(active))
            # The first unfinished task (if any) is served by what is left after the finished ones.
            prev = np.where(b > 0, cum[ar, np.maximum(b - 1, 0)], 0.0)
            head = np.minimum(b, self.capacity - 1)
            rem = q[ar, head, _REM]
            q[ar, head, _REM] = np.where(b < cnt_a, np.maximum(rem - np.maximum(served - prev, 0.0), 0.0), rem)
            if b.any():
                r, l = np.nonzero(done)
                moving.append((s + 1, active[r], q[r, l].copy()))
                idx = np.minimum(lanes + b[:, None], self.capacity - 1)
                keep = lanes < (cnt_a - b)[:, None]
                q = np.where(keep[..., None], q[ar[:, None], idx], 0.0)
                self.count[s, active] = cnt_a - b
            self.tasks[s, active] = q
        for nxt, rows_idx, records in moving:
            rest = np.zeros(len(rows_idx), dtype=bool)
            for later in range(nxt, 3):
                rest |= records[:, _NEXT_WORK[later]] > 0
            fin = ~rest
            if fin.any():
                np.add.at(completed, rows_idx[fin], 1)
                np.add.at(latency, rows_idx[fin], slot + 1 - records[fin, _ARRIVAL])
            if rest.any():
                self._route(nxt, rows_idx[rest], records[rest])
        return completed.reshape(self.shape), latency.reshape(self.shape)
