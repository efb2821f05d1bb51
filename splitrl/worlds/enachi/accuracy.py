"""Accuracy of progressive feature transmission: the hyperbolic surrogate (eq. 14), its inverse
and fit, and the shipped per-sample table built from a real CNN on scikit-learn's digits
(:mod:`splitrl.worlds.enachi.digits`).

Plain numpy and scipy: rollout workers load the table as arrays and never import torch.

* :func:`surrogate` -- ``A(x) = max(0, a - b / (min(x, 1) + c))`` for the fraction ``x`` of
  feature maps received (``a, b, c > 0``; concave, non-decreasing).
* :func:`surrogate_inverse` -- the fraction at which ``A`` reaches an accuracy (``inf`` beyond
  ``A(1)``).
* :func:`fit_surrogate` -- least squares with ``b > 0`` and ``c >= c_min``.
* :class:`DigitsTable` / :func:`load_table` -- the shipped ``enachi_digits.npz``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

#: the shipped table (``splitrl enachi-data build`` rewrites it)
TABLE_PATH = Path(__file__).with_name("data") / "enachi_digits.npz"
C_MIN = 1e-3


def surrogate(x, a, b, c):
    """Eq. (14), ``max(0, a - b / (min(x, 1) + c))``, broadcast over all arguments."""
    x = np.minimum(np.asarray(x, dtype=float), 1.0)
    return np.maximum(0.0, np.asarray(a) - np.asarray(b) / (x + np.asarray(c)))


def surrogate_inverse(acc, a, b, c):
    """The fraction ``x >= 0`` with ``surrogate(x) = acc``: 0 for ``acc <= A(0)``, ``inf`` for
    ``acc > A(1)``."""
    acc, a, b, c = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (acc, a, b, c)))
    with np.errstate(divide="ignore", invalid="ignore"):
        x = b / (a - acc) - c
    x = np.where(acc >= a, np.inf, x)
    x = np.where(acc <= surrogate(0.0, a, b, c), 0.0, x)
    return np.where(x > 1.0 + 1e-12, np.inf, np.maximum(x, 0.0))


def fit_surrogate(x, acc, *, c_min: float = C_MIN) -> tuple[float, float, float, float]:
    """Least-squares ``(a, b, c)`` of eq. (14) to the points ``(x, acc)`` with ``0 < a <= 1``
    (an accuracy), ``b > 0``, ``c >= c_min``; returns ``(a, b, c, rmse)``."""
    from scipy.optimize import curve_fit

    x, acc = np.asarray(x, dtype=float), np.asarray(acc, dtype=float)

    def model(xx, a, b, c):
        return a - b / (xx + c)

    best = None
    for c0 in (c_min, 0.01, 0.1, 1.0):  # a few starts: the fit is not convex in c
        a0 = min(acc.max() + 0.01, 1.0)
        b0 = max((a0 - acc.min()) * (x.min() + c0), 1e-6)
        try:
            p, _ = curve_fit(
                model,
                x,
                acc,
                p0=(a0, b0, c0),
                bounds=((0.0, 1e-9, c_min), (1.0, np.inf, np.inf)),
                maxfev=20000,
            )
        except RuntimeError:
            continue
        rmse = float(np.sqrt(np.mean((surrogate(x, *p) - acc) ** 2)))
        if best is None or rmse < best[3]:
            best = (float(p[0]), float(p[1]), float(p[2]), rmse)
    if best is None:
        raise ValueError("fit_surrogate: no fit converged")
    return best


@dataclass(frozen=True)
class SplitTable:
    """One split point of the digits table (evaluation half, ``S`` samples, ``P`` points ``ks``)."""

    num_maps: int  # K_j
    order: np.ndarray  # (K_j,) map indices, most important first
    ks: np.ndarray  # (P,) map counts the tables are sampled at, ascending, last = K_j
    acc_importance: np.ndarray  # (P,) accuracy with the top-k maps (importance order)
    acc_index: np.ndarray  # (P,) accuracy with the first k maps (index order)
    correct: np.ndarray  # (S, P) bool, per sample, importance order
    correct_index: np.ndarray  # (S, P) bool, per sample, index order
    entropy_pred: np.ndarray  # (S, P) the predictor's entropy [nats]
    entropy_true: np.ndarray  # (S, P) the classifier's entropy [nats]
    fit: tuple[float, float, float]  # (a, b, c) of eq. (14), calibration half
    rmse: float
    entropy_threshold: float  # H_th [nats], calibrated on the calibration half

    def k_index(self, fraction) -> np.ndarray:
        """Index into ``ks`` of the largest sampled count ``<= fraction * K_j`` (-1: none)."""
        k = np.floor(np.asarray(fraction, dtype=float) * self.num_maps + 1e-9)
        return np.searchsorted(self.ks, k, side="right") - 1


@dataclass(frozen=True)
class DigitsTable:
    splits: tuple[SplitTable, ...]
    full_accuracy: float  # the fine-tuned CNN with every map, evaluation half
    meta: dict


def _pack(table: dict) -> dict[str, np.ndarray]:
    out = {k: np.asarray(v) for k, v in table.items()}
    for k, v in out.items():
        if v.dtype == object:
            raise TypeError(f"table field {k!r}: object arrays cannot be stored (allow_pickle stays off)")
    return out


def save_table(arrays: dict, path: Path) -> None:
    """Write the npz atomically (a temporary file, then a rename)."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **_pack(arrays))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would ship unreadable to other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


SPLIT_FIELDS = (
    "num_maps",
    "order",
    "ks",
    "acc_importance",
    "acc_index",
    "correct",
    "correct_index",
    "entropy_pred",
    "entropy_true",
    "fit",
    "rmse",
    "entropy_threshold",
)


def table_from_arrays(z) -> DigitsTable:
    import json

    n = int(z["num_splits"])
    splits = []
    for j in range(n):
        f = {k: z[f"s{j}_{k}"] for k in SPLIT_FIELDS}
        splits.append(
            SplitTable(
                num_maps=int(f["num_maps"]),
                order=f["order"].astype(np.int64),
                ks=f["ks"].astype(np.int64),
                acc_importance=f["acc_importance"].astype(float),
                acc_index=f["acc_index"].astype(float),
                correct=f["correct"].astype(bool),
                correct_index=f["correct_index"].astype(bool),
                entropy_pred=f["entropy_pred"].astype(float),
                entropy_true=f["entropy_true"].astype(float),
                fit=tuple(float(v) for v in f["fit"]),
                rmse=float(f["rmse"]),
                entropy_threshold=float(f["entropy_threshold"]),
            )
        )
    return DigitsTable(tuple(splits), float(z["full_accuracy"]), json.loads(str(z["meta"])))


@cache
def load_table(path: str | None = None) -> DigitsTable:
    """The digits table (default: the shipped one)."""
    with np.load(Path(path) if path else TABLE_PATH, allow_pickle=False) as z:
        return table_from_arrays(z)
