"""L0 is measured by timing the real model once, then served from the cache."""

import json
import os

import pytest
import torch

from splitrl.worlds.emh import latency


def test_server_latency_is_measured_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("SPLITRL_CACHE_DIR", str(tmp_path))
    l0 = latency.measure_server_latency("alexnet", repeats=3)
    assert 1e-4 < l0 < 10.0
    cache = json.loads((tmp_path / "server_latency.json").read_text())
    [(key, value)] = cache.items()
    assert key.startswith("alexnet|3x224x224|torch-") and value == l0
    # a cached value is returned as is (no second timing): plant one and read it back
    cache[key] = 0.123
    (tmp_path / "server_latency.json").write_text(json.dumps(cache))
    assert latency.measure_server_latency("alexnet") == 0.123
    assert latency.measure_server_latency("alexnet", repeats=3, refresh=True) != 0.123
    # a process limited to one thread (a Ray worker, a sweep trial) reads the same entry, and keeps its limit
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        l0_one = latency.measure_server_latency("alexnet", repeats=3)
        assert (
            l0_one == json.loads((tmp_path / "server_latency.json").read_text())[key] and torch.get_num_threads() == 1
        )
        assert key.endswith(f"threads-{os.cpu_count()}")
    finally:
        torch.set_num_threads(threads)
    with pytest.raises(ValueError, match="unknown model"):
        latency.measure_server_latency("lenet")
