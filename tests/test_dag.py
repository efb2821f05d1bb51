"""Operator-grained partition points of DAG-structured DNNs (EMH-PPO Algorithm 1)."""

import pytest

from splitrl.dnn import MODELS, PUBLISHED_GMACS, load_profile
from splitrl.dnn.dag import OperatorGraph


def _ancestors_closure(graph, cut):
    seen, stack = set(), list(cut)
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(graph.nodes[n].parents)
    return seen


def _path_avoiding(graph, blocked):
    """Is there a forward path from the input to the output that avoids ``blocked``?"""
    src, dst = graph.order[0], graph.order[-1]
    if src in blocked:
        return False
    seen, stack = {src}, [src]
    while stack:
        n = stack.pop()
        if n == dst:
            return True
        for c in graph.nodes[n].children:
            if c not in blocked and c not in seen:
                seen.add(c)
                stack.append(c)
    return False


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_cut_blocks_all_paths_and_its_numbers_add_up(model):
    prof = load_profile(model)
    g = OperatorGraph(prof["nodes"])
    pts = g.partition_points()
    total = sum(n["macs"] for n in prof["nodes"])
    assert total / 1e9 == pytest.approx(PUBLISHED_GMACS[model], rel=0.03)
    assert [p["index"] for p in pts] == list(range(1, len(pts) + 1))
    assert pts[0]["cut"] == ["input"] and pts[0]["device_macs"] == 0
    assert pts[0]["tx_bytes"] == prof["nodes"][0]["out_bytes"]
    assert pts[-1]["device_macs"] == pytest.approx(total) and pts[-1]["tx_bytes"] == 0
    cuts = set()
    for p in pts[:-1]:
        assert not _path_avoiding(g, set(p["cut"])), p
        device = _ancestors_closure(g, p["cut"])
        assert p["device_macs"] == pytest.approx(sum(g.nodes[n].macs for n in device))
        assert p["tx_bytes"] == pytest.approx(sum(g.nodes[n].out_bytes for n in p["cut"]))
        # a minimal cut: every cut operator feeds the server side
        assert all(any(c not in device for c in g.nodes[n].children) for n in p["cut"])
        cuts.add(frozenset(p["cut"]))
    assert len(cuts) == len(pts) - 1  # no point listed twice
    # the operator-grained points include every layer-level (chain) point
    dag_macs = {round(p["device_macs"]) for p in pts}
    assert all(round(c["device_macs"]) in dag_macs for c in prof["layer_points"])


def test_parallel_branches_combine_by_cartesian_product():
    # input -> a -> {b1 -> b2, c1} -> add -> out: the branch (b1, b2) has 3 prefixes, (c1) has 2
    nodes = [
        {"name": "input", "op": "input", "macs": 0, "out_bytes": 8, "parents": []},
        {"name": "a", "op": "conv", "macs": 1, "out_bytes": 4, "parents": ["input"]},
        {"name": "b1", "op": "conv", "macs": 2, "out_bytes": 3, "parents": ["a"]},
        {"name": "b2", "op": "conv", "macs": 3, "out_bytes": 2, "parents": ["b1"]},
        {"name": "c1", "op": "conv", "macs": 5, "out_bytes": 1, "parents": ["a"]},
        {"name": "add", "op": "add", "macs": 0, "out_bytes": 2, "parents": ["b2", "c1"]},
        {"name": "out", "op": "linear", "macs": 7, "out_bytes": 1, "parents": ["add"]},
    ]
    pts = OperatorGraph(nodes).partition_points()
    cuts = [tuple(p["cut"]) for p in pts]
    # input, a, 3 x 2 - 1 mixed branch states, add, out
    assert len(pts) == 1 + 1 + (3 * 2 - 1) + 1 + 1
    assert ("b2", "c1") in cuts and ("a", "c1") in cuts and ("b1",) not in cuts
    p = pts[cuts.index(("b1", "c1"))]
    assert p["device_macs"] == 1 + 2 + 5 and p["tx_bytes"] == 3 + 1
