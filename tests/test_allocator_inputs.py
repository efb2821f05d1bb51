"""Every public allocator of every world rejects NaN and inf with a ValueError naming the argument
(instead of a silently wrong allocation), and accepts the same call with finite values."""

from __future__ import annotations

import numpy as np
import pytest

from splitrl.worlds.enachi import allocators as en
from splitrl.worlds.lyappo import allocators as ly
from splitrl.worlds.lymdo import allocators as lm

N = 3
V3 = np.array([1.0, 2.0, 3.0])

DEVICES = {
    "Q": V3,
    "kind": np.array([0, 1, 2]),
    "gain": np.full(N, 1e-9),
    "window_s": np.full(N, 0.2),
    "total_bits": np.array([1e6, 1.6e6, 0.0]),
    "a": np.ones(N),
    "b": np.array([0.0, 0.02, 0.0]),
    "c": np.array([1.0, 1e-3, 1.0]),
    "a_max": np.full(N, 0.99),
    "e_local": np.array([0.0, 0.01, 0.6]),
    "local_ok": np.array([True, True, True]),
}

#: (function, positional args, keyword args): a valid call of each public allocator
CALLS = [
    (ly.allocate_local_cpu, (V3 * 1e8,), dict(tau=0.01, weight=1e18, kappa=1e-28, f_max=2e9)),
    (
        ly.allocate_transmission,
        (V3 * 1e5, 1e-9),
        dict(tau=0.01, weight=1e12, bandwidth=1e6, noise_psd=4e-21, p_max=1.0),
    ),
    (ly.allocate_edge_cpu, (V3 * 1e8,), dict(tau=0.01, f_max=2e10)),
    (lm.md1_sojourn, (V3 * 1e7, V3, V3 * 1e9), {}),
    (lm.allocate_ue_cpu, (V3, V3 * 1e7, V3), dict(V=10.0, kappa=1e-28, f_max=1.5e9)),
    (lm.allocate_edge_cpu_sqrt, (V3 * 1e7,), dict(f_max=15e9)),
    (lm.allocate_bandwidth, (V3 * 1e6, V3 * 10), dict(bandwidth_hz=5e6)),
    (
        en.reference_power,
        (V3, 1e6),
        dict(
            gain=1e-9,
            window_s=0.2,
            total_bits=1.6e6,
            a=1.0,
            b=0.02,
            c=1e-3,
            v_per_device=10.0,
            p_max=2.0,
            noise_psd=4e-21,
        ),
    ),
    (
        en.slot_power,
        (V3, 1e-9, 1e6),
        dict(u_inner=5.0, map_bits=25088.0, slot_s=1e-3, noise_psd=4e-21, p_max=2.0, remaining_bits=1e6),
    ),
    (en.allocate_bandwidth, (DEVICES,), dict(total_bw_hz=3e6, v_per_device=10.0, p_max=2.0, noise_psd=4e-21)),
]


def _numeric_arguments(args, kwargs):
    """(label, replace) for every numeric argument: positional, keyword, and the device fields."""
    for i, a in enumerate(args):
        if isinstance(a, dict):
            for k, v in a.items():
                if v.dtype.kind == "f":
                    yield f"devices[{k!r}]", ("dict", i, k)
        else:
            yield None, ("pos", i, None)
    for k in kwargs:
        yield k, ("kw", k, None)


def _with(args, kwargs, where, bad):
    args, kwargs = list(args), dict(kwargs)
    kind, i, k = where
    if kind == "pos":
        args[i] = np.full(np.shape(args[i]), bad)
    elif kind == "kw":
        kwargs[i] = np.full(np.shape(kwargs[i]), bad)
    else:
        d = dict(args[i])
        d[k] = np.where(np.arange(d[k].size) == 1, bad, d[k])
        args[i] = d
    return args, kwargs


@pytest.mark.parametrize(
    "fn,args,kwargs", CALLS, ids=[c[0].__module__.split(".")[-2] + "." + c[0].__name__ for c in CALLS]
)
def test_nan_and_inf_are_rejected_naming_the_argument(fn, args, kwargs):
    import inspect

    out = fn(*args, **kwargs)  # the finite call gives finite numbers
    if isinstance(out, en.Stage1):
        out = (out.bandwidth, out.power, out.fraction)
    assert all(np.all(np.isfinite(np.asarray(o, dtype=float))) for o in (out if isinstance(out, tuple) else [out]))
    params = list(inspect.signature(fn).parameters)
    for label, where in _numeric_arguments(args, kwargs):
        name = label or params[where[1]]
        for bad, word in ((np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")):
            a, k = _with(args, kwargs, where, bad)
            with pytest.raises(ValueError) as err:
                fn(*a, **k)
            msg = str(err.value)
            assert msg.startswith(f"{fn.__name__}: argument ") and repr(name).strip("'") in msg and word in msg, msg
