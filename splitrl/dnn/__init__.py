"""DNN profiles: per-operator MACs and output sizes traced from real torchvision models.

A profile is the operator-level DAG of a model (``torch.fx`` trace + shape propagation on a
``1 x C x H x W`` input, ``weights=None`` so nothing is downloaded) with cheap operators
(activations, batch-norm, dropout, flatten, ...) folded into their producer, as the EMH-PPO
paper's footnote does.  Every node records its MACs, the bytes of its output tensor and its
parents.  From the DAG we derive two sets of partition points:

* ``partition_points``: the *operator-grained* points of EMH-PPO (any set of operators that blocks
  every input-to-output path, :mod:`splitrl.dnn.dag`), indexed ``s = 1..S``;
* ``layer_points``: the *layer-level* (chain, Neurosurgeon-style) points used by LyaPPO (Section
  III-A), positions in the topological order at which exactly one tensor crosses, indexed
  ``k = 0..K``: point 0 sends the raw input, point ``K`` runs the whole model on the device.

Tracing needs torch; everything else (loading a cached profile, the partition table) is plain
Python/numpy so that rollout workers never import torch for the simulator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

#: Models with a cached profile and their builder names in ``torchvision.models``.
MODELS: dict[str, dict] = {
    "alexnet": {},
    "vgg16": {},
    "resnet18": {},
    "resnet50": {},
    "mobilenet_v2": {},
    "googlenet": {"aux_logits": False, "init_weights": False},
}

#: Published torchvision figures (GMACs, listed as "GFLOPS" in the torchvision model docs).
PUBLISHED_GMACS = {
    "alexnet": 0.71,
    "vgg16": 15.47,
    "resnet18": 1.81,
    "resnet50": 4.09,
    "mobilenet_v2": 0.30,
    "googlenet": 1.50,
}

DEFAULT_INPUT_SHAPE = (3, 224, 224)
FEATURE_BYTES = 4  # float32 activations
PARAM_BYTES = 4  # float32 parameters

# Operators folded into their producer (no MACs counted, the cut moves past them).
_FOLD_MODULES = (
    "BatchNorm2d",
    "ReLU",
    "ReLU6",
    "Dropout",
    "Identity",
    "Hardswish",
    "Hardsigmoid",
    "SiLU",
    "GELU",
    "Sigmoid",
    "Tanh",
    "LocalResponseNorm",
)
_FOLD_FUNCTIONS = ("relu", "relu_", "flatten", "dropout", "getattr", "getitem", "reshape", "view")


@dataclass(frozen=True)
class PartitionTable:
    """The ``(c_k, d_k)`` table of LyaPPO Section III-A for one model, ``k = 0..K``.

    ``c[k]`` is the fraction of the model's MACs run on the device before point ``k``
    (``c[0] = 0``, ``c[K] = 1``); ``d[k]`` is the size of the tensor sent at point ``k`` as a
    ratio to the input size (``d[0] = 1``, ``d[K] = 0``; may exceed 1).
    """

    model: str
    total_macs: float
    input_bits: float
    c: np.ndarray
    d: np.ndarray
    names: tuple[str, ...]

    @property
    def num_points(self) -> int:
        return len(self.c)


def _op_name(node, modules) -> str:
    if node.op == "call_module":
        return type(modules[node.target]).__name__
    if node.op in ("call_function", "call_method"):
        return getattr(node.target, "__name__", str(node.target))
    return node.op


def _macs(node, modules) -> float:
    """Multiply-accumulates of one fx node (conv and linear; everything else counts 0)."""
    import torch

    if node.op != "call_module":
        return 0.0
    mod = modules[node.target]
    out = node.meta["tensor_meta"].shape
    if isinstance(mod, torch.nn.Conv2d):
        kh, kw = mod.kernel_size
        return float(np.prod(out)) * (mod.in_channels // mod.groups) * kh * kw
    if isinstance(mod, torch.nn.Linear):
        return float(np.prod(out)) * mod.in_features
    return 0.0


def _param_bytes(node, modules) -> float:
    """Bytes of the parameters a module node holds (float32; buffers such as BN statistics left out)."""
    if node.op != "call_module":
        return 0.0
    return float(sum(p.numel() for p in modules[node.target].parameters(recurse=False))) * PARAM_BYTES


def trace_profile(model: str, input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE) -> dict:
    """Trace ``torchvision.models.<model>(weights=None)`` into a profile dict (see module doc)."""
    import torch
    import torchvision
    from torch.fx import symbolic_trace
    from torch.fx.passes.shape_prop import ShapeProp

    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(sorted(MODELS))}")
    net = getattr(torchvision.models, model)(weights=None, **MODELS[model]).eval()
    gm = symbolic_trace(net)
    modules = dict(gm.named_modules())
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.zeros(1, *input_shape))

    # Fold cheap single-input operators into their producer: ``alias`` maps an fx node to the
    # node that stands for it in the profile.
    alias: dict = {}
    nodes: list[dict] = []
    index: dict[str, dict] = {}
    for node in gm.graph.nodes:
        if node.op == "output":
            continue
        tm = node.meta.get("tensor_meta")
        fx_parents = [a for a in node.all_input_nodes]
        op = _op_name(node, modules)
        if node.op == "placeholder":
            entry = {
                "name": "input",
                "op": "input",
                "macs": 0.0,
                "param_bytes": 0.0,
                "out_bytes": float(np.prod(tm.shape)) * FEATURE_BYTES,
                "parents": [],
            }
            alias[node] = entry
            nodes.append(entry)
            index[entry["name"]] = entry
            continue
        parents = []
        for p in fx_parents:
            a = alias[p]
            if a["name"] not in parents:
                parents.append(a["name"])
        foldable = op in _FOLD_MODULES or op in _FOLD_FUNCTIONS
        if foldable and len(parents) == 1 and node.op != "placeholder":
            host = index[parents[0]]
            host["param_bytes"] += _param_bytes(node, modules)  # e.g. a BatchNorm's weight and bias
            if tm is not None and hasattr(tm, "shape"):
                host["out_bytes"] = float(np.prod(tm.shape)) * FEATURE_BYTES
            alias[node] = host
            continue
        entry = {
            "name": node.name,
            "op": op,
            "macs": _macs(node, modules),
            "param_bytes": _param_bytes(node, modules),
            "out_bytes": float(np.prod(tm.shape)) * FEATURE_BYTES if tm is not None else 0.0,
            "parents": parents,
        }
        alias[node] = entry
        nodes.append(entry)
        index[entry["name"]] = entry

    from .dag import OperatorGraph

    total = float(sum(n["macs"] for n in nodes))
    profile = {
        "model": model,
        "input_shape": list(input_shape),
        "total_macs": total,
        "nodes": nodes,
        # operator-grained points s = 1..S (EMH-PPO) and layer-level points k = 0..K (LyaPPO)
        "partition_points": OperatorGraph(nodes).partition_points(),
        "layer_points": chain_partition_points(nodes),
    }
    return profile


def chain_partition_points(nodes: list[dict]) -> list[dict]:
    """Layer-level partition points of a topologically ordered DAG.

    A cut after position ``i`` of the order is a layer-level point when exactly one tensor
    (the output of one node) is consumed after ``i``; point 0 is the raw input, the last point
    runs everything locally (``tx_bytes = 0``).  Consecutive points with identical device MACs
    are merged (the earlier, smaller transmission is kept) so every point is a distinct option.
    """
    pos = {n["name"]: i for i, n in enumerate(nodes)}
    last_use = {n["name"]: pos[n["name"]] for n in nodes}
    for n in nodes:
        for p in n["parents"]:
            last_use[p] = max(last_use[p], pos[n["name"]])
    points = [
        {
            "cut": ["input"],
            "device_macs": 0.0,
            "tx_bytes": nodes[0]["out_bytes"],
            "device_param_bytes": 0.0,
            "out_bytes": nodes[0]["out_bytes"],
        }
    ]
    device = params = 0.0
    for i, n in enumerate(nodes[1:], start=1):
        device += n["macs"]
        params += n.get("param_bytes", 0.0)
        live = [m["name"] for m in nodes[: i + 1] if last_use[m["name"]] > i]
        if i == len(nodes) - 1 or len(live) != 1 or live[0] != n["name"]:
            continue
        points.append(
            {
                "cut": [n["name"]],
                "device_macs": device,
                "tx_bytes": n["out_bytes"],
                "device_param_bytes": params,
                "out_bytes": n["out_bytes"],
            }
        )
    total = sum(n["macs"] for n in nodes)
    points.append(
        {
            "cut": [nodes[-1]["name"]],
            "device_macs": total,
            "tx_bytes": 0.0,
            "device_param_bytes": sum(n.get("param_bytes", 0.0) for n in nodes),
            "out_bytes": nodes[-1]["out_bytes"],
        }
    )
    merged: list[dict] = []
    for p in points:
        if merged and p["device_macs"] == merged[-1]["device_macs"] and p["tx_bytes"] > 0:
            if p["tx_bytes"] < merged[-1]["tx_bytes"] and merged[-1]["device_macs"] > 0:
                merged[-1] = p
            continue
        merged.append(p)
    for k, p in enumerate(merged):
        p["index"] = k
    keys = ("index", "cut", "device_macs", "tx_bytes", "device_param_bytes", "out_bytes")
    return [{k: p[k] for k in keys} for p in merged]


def _cache_dir() -> Path:
    return Path(str(resources.files("splitrl.dnn") / "profiles"))


def save_profile(profile: dict, directory: Path | None = None) -> Path:
    path = Path(directory or _cache_dir()) / f"{profile['model']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(profile, indent=1) + "\n")
    tmp.replace(path)
    return path


@cache
def load_profile(model: str) -> dict:
    """The cached profile of ``model`` (shipped as JSON in the package)."""
    path = _cache_dir() / f"{model}.json"
    if not path.exists():
        known = sorted(p.stem for p in _cache_dir().glob("*.json"))
        raise ValueError(f"no profile for model {model!r}; known: {', '.join(known)}")
    return json.loads(path.read_text())


def available_models() -> list[str]:
    return sorted(p.stem for p in _cache_dir().glob("*.json"))


def pareto_points(c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Indices of the points not dominated in (device share ``c``, transmitted size ``d``).

    Point ``j`` dominates ``k`` when ``c_j <= c_k`` and ``d_j <= d_k`` with one inequality strict:
    ``k`` then costs at least as much device computation *and* transmission as ``j``.  The raw
    input (``c = 0``) and full-local (``d = 0``) points are always kept.
    """
    keep = []
    for k in range(len(c)):
        dominated = np.any((c <= c[k]) & (d <= d[k]) & ((c < c[k]) | (d < d[k])))
        if not dominated:
            keep.append(k)
    return np.array(keep, dtype=np.int64)


def partition_table(
    model: str, input_bits_per_element: float = 8.0, points: str = "all", feature_bits_per_element: float = 32.0
) -> PartitionTable:
    """LyaPPO's ``(c_k, d_k)`` table for ``model``.

    ``d_k`` is relative to the raw input ``D`` = elements x ``input_bits_per_element``, the bits
    per input element as transmitted (8: a raw 8-bit camera frame; below 1: an encoded image).
    Intermediate features are sent at ``feature_bits_per_element`` bits per element (32: the
    float32 tensors of the profile; 8: 8-bit quantisation).  ``d[0] = 1`` by definition.
    ``points="pareto"`` keeps only the non-dominated points (:func:`pareto_points`);
    ``points="operator"`` gives EMH-PPO's operator-grained points ``s = 1..S`` instead of the
    layer-level chain (row ``i`` is point ``s = i + 1``).
    """
    prof = load_profile(model)
    pts = prof["partition_points" if points == "operator" else "layer_points"]
    elements = float(np.prod(prof["input_shape"]))
    input_bits = elements * input_bits_per_element
    c = np.array([p["device_macs"] for p in pts]) / prof["total_macs"]
    d = np.array([p["tx_bytes"] / FEATURE_BYTES * feature_bits_per_element for p in pts]) / input_bits
    d[0] = 1.0
    c[-1] = 1.0
    names = tuple("+".join(p["cut"]) for p in pts)
    if points == "pareto":
        keep = pareto_points(c, d)
        c, d, names = c[keep], d[keep], tuple(names[i] for i in keep)
    elif points not in ("all", "operator"):
        raise ValueError(f"points must be 'all', 'pareto' or 'operator', got {points!r}")
    return PartitionTable(
        model=model, total_macs=float(prof["total_macs"]), input_bits=input_bits, c=c, d=d, names=names
    )
