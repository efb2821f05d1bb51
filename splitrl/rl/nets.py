"""Small torch building blocks of the RLModules: MLPs with orthogonal init, logit priors."""

from __future__ import annotations

import numpy as np
import torch

_ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "gelu": torch.nn.GELU}


def mlp(sizes: list[int], activation: str = "tanh", out_gain: float = 1.0) -> torch.nn.Sequential:
    """Linear layers with ``activation`` between them (none after the last), orthogonal init."""
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = torch.nn.Linear(a, b)
        last = i == len(sizes) - 2
        torch.nn.init.orthogonal_(lin.weight, gain=out_gain if last else np.sqrt(2))
        torch.nn.init.zeros_(lin.bias)
        layers.append(lin)
        if not last:
            layers.append(_ACTIVATIONS[activation]())
    return torch.nn.Sequential(*layers)


def init_bias(net: torch.nn.Sequential, bias) -> None:
    """Add ``bias`` (one value per output, or ``None``) to the last layer's bias: the initial
    logits' prior (e.g. favouring the fully-local point, so exploration starts near Local-only)."""
    if bias is None:
        return
    last = [m for m in net if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        b = torch.as_tensor(bias, dtype=last.bias.dtype)
        last.bias[: b.numel()] += b
