"""Server baseline latency L0 (EMH-PPO eq. 2): measured once on this machine, cached, overridable.

``L0`` is the latency of one inference of the real torchvision model (``weights=None``, batch 1,
eval mode, no autograd) when the server serves a single device.  The median of ``repeats`` timed
forward passes (after one warm-up) is cached in ``$SPLITRL_CACHE_DIR`` (default
``~/.cache/splitrl``) as ``server_latency.json``, keyed by model, input shape, torch version and
the machine's core count (the server runs on all cores, whatever threads the calling process is
limited to), so every later env build reuses it.  A scenario can override it with a number.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def cache_path() -> Path:
    return Path(os.environ.get("SPLITRL_CACHE_DIR", Path.home() / ".cache" / "splitrl")) / "server_latency.json"


def _key(model: str, input_shape: tuple[int, ...]) -> str:
    import torch

    return f"{model}|{'x'.join(map(str, input_shape))}|torch-{torch.__version__}|threads-{_server_threads()}"


def _server_threads() -> int:
    """The server runs the model on all of the machine's cores, whatever this process is limited
    to (Ray sets ``OMP_NUM_THREADS=1`` in workers; a sweep trial holds one CPU)."""
    return os.cpu_count() or 1


def measure_server_latency(
    model: str, input_shape: tuple[int, ...] = (3, 224, 224), repeats: int = 5, refresh: bool = False
) -> float:
    """``L0`` in seconds for ``model`` (cached; ``refresh=True`` measures again)."""
    import torch
    import torchvision

    from splitrl.dnn import MODELS

    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(sorted(MODELS))}")
    path = cache_path()
    cache = json.loads(path.read_text()) if path.is_file() else {}
    key = _key(model, input_shape)
    if key in cache and not refresh:
        return float(cache[key])
    net = getattr(torchvision.models, model)(weights=None, **MODELS[model]).eval()
    x = torch.zeros(1, *input_shape)
    times = []
    threads = torch.get_num_threads()
    torch.set_num_threads(_server_threads())
    try:
        with torch.inference_mode():
            net(x)  # warm-up
            for _ in range(repeats):
                t0 = time.perf_counter()
                net(x)
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    l0 = float(sorted(times)[len(times) // 2])
    cache[key] = l0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache, indent=1) + "\n")
    tmp.replace(path)
    return l0
