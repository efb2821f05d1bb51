"""Input checks shared by the public allocators of every world."""

from __future__ import annotations

import numpy as np


def require_finite(where: str, **arrays) -> None:
    """``ValueError`` naming the first argument of ``arrays`` that holds NaN or inf (``None``
    values are skipped): the allocators' closed forms would otherwise return garbage silently."""
    for name, value in arrays.items():
        if value is None:
            continue
        a = np.asarray(value, dtype=float)
        bad = ~np.isfinite(a)
        if bad.any():
            kind = "NaN" if np.isnan(a).any() else "inf"
            raise ValueError(
                f"{where}: argument {name!r} must be finite, got {kind} in {int(bad.sum())} of {a.size} entries"
            )


def finite_checked(name: str, fn, *, skip: tuple[str, ...] = ()):
    """``fn`` behind :func:`require_finite` on every argument but ``skip``, under the public
    ``name``; the unchecked ``fn`` stays at ``.unchecked`` for hot loops whose inputs were checked
    once at their boundary (a per-slot power inside a frame, a per-iteration evaluation)."""
    import functools
    import inspect

    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs).arguments
        require_finite(name, **{k: v for k, v in bound.items() if k not in skip})
        return fn(*args, **kwargs)

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.unchecked = fn
    return wrapper
