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
