"""Operator-grained partitioning of DAG-structured DNNs (EMH-PPO Section III-A, Algorithm 1).

A profile's nodes (topological order, each with its parents, MACs and output bytes) form the
paper's bidirectional graph linked list: :class:`OperatorGraph` links every node to its parents
and children.  A *partition point* is a set of operators that together block every forward path
from the input to the output: the device runs a predecessor-closed set of operators ``D`` (a node
is in ``D`` only with all its parents) and sends the outputs of the frontier ``cut(D)`` -- the
nodes of ``D`` with a child outside ``D``.  Point ``s = 1`` sends the raw input, ``s = S`` runs
everything on the device (its cut is the output operator, and nothing is sent).

Enumeration follows Algorithm 1's idea -- parallel branches combine by Cartesian product -- by
splitting the DAG at its articulation points (positions where one tensor crosses) into blocks and
enumerating the predecessor-closed subsets of each block; the points are ordered into one
dimension by block, then device MACs, then transmitted bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class OpNode:
    name: str
    op: str
    macs: float
    out_bytes: float
    parents: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)


class OperatorGraph:
    """Bidirectional graph linked list over a profile's nodes (which must be topologically ordered)."""

    def __init__(self, nodes: list[dict]):
        self.order = [n["name"] for n in nodes]
        self.nodes = {
            n["name"]: OpNode(n["name"], n["op"], float(n["macs"]), float(n["out_bytes"]), list(n["parents"]))
            for n in nodes
        }
        pos = {name: i for i, name in enumerate(self.order)}
        for node in self.nodes.values():
            for p in node.parents:
                if p not in self.nodes:
                    raise ValueError(f"node {node.name!r} has unknown parent {p!r}")
                if pos[p] >= pos[node.name]:
                    raise ValueError(f"nodes are not in topological order: {p!r} after {node.name!r}")
                self.nodes[p].children.append(node.name)
        self.pos = pos

    def cut_of(self, device: set[str]) -> list[str]:
        """The frontier of a device-side set: its nodes with a child outside it (topological order)."""
        return [n for n in self.order if n in device and any(c not in device for c in self.nodes[n].children)]

    def articulation_positions(self) -> list[int]:
        """Positions ``i`` after which exactly the output of node ``i`` crosses (single-tensor cuts)."""
        last_use = {n: self.pos[n] for n in self.order}
        for n in self.order:
            for p in self.nodes[n].parents:
                last_use[p] = max(last_use[p], self.pos[n])
        out, live = [], set()
        for i, n in enumerate(self.order):
            live.add(n)
            live = {m for m in live if last_use[m] > i}
            if live == {n}:
                out.append(i)
        return out

    def _block_downsets(self, block: list[str]) -> list[frozenset[str]]:
        """All predecessor-closed subsets of ``block`` (parents outside the block count as done)."""
        inside = set(block)
        result: list[frozenset[str]] = []

        def rec(i: int, chosen: set[str]) -> None:
            if i == len(block):
                result.append(frozenset(chosen))
                return
            name = block[i]
            rec(i + 1, chosen)  # leave it on the server
            if all(p in chosen or p not in inside for p in self.nodes[name].parents):
                chosen.add(name)
                rec(i + 1, chosen)
                chosen.discard(name)

        rec(0, set())
        return result

    def partition_points(self) -> list[dict]:
        """All operator-grained partition points, ``index`` 1..S (see the module docstring)."""
        arts = self.articulation_positions()
        points = []
        done: set[str] = set()
        start = 0
        # Block b spans (previous articulation, this articulation]; the input is position 0.
        for a in arts:
            block = self.order[start : a + 1]
            for sub in self._block_downsets(block):
                if not sub and start > 0:
                    continue  # the empty subset equals the previous block's full cut
                device = done | sub
                if not device:
                    continue
                points.append(device)
            done |= set(block)
            start = a + 1
        tail = self.order[start:]
        for sub in self._block_downsets(tail):
            if sub:
                points.append(done | sub)
        seen, out = set(), []
        for device in points:
            key = frozenset(device)
            if key in seen:
                continue
            seen.add(key)
            cut = self.cut_of(device)
            out.append(
                {
                    "cut": cut,
                    "device_macs": sum(self.nodes[n].macs for n in device),
                    "tx_bytes": sum(self.nodes[n].out_bytes for n in cut),
                    "_depth": max(self.pos[n] for n in device),
                }
            )
        # One dimension: full-local last, otherwise by device MACs then bytes (stable by depth).
        full = [dict(p, cut=[self.order[-1]], tx_bytes=0.0) for p in out if not p["cut"]]
        rest = sorted((p for p in out if p["cut"]), key=lambda p: (p["device_macs"], p["tx_bytes"], p["_depth"]))
        ordered = rest + full
        return [
            {"index": i + 1, "cut": p["cut"], "device_macs": p["device_macs"], "tx_bytes": p["tx_bytes"]}
            for i, p in enumerate(ordered)
        ]
