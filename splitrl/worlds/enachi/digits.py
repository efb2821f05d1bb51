"""Build the ENACHI accuracy table from a real CNN on scikit-learn's bundled digits.

No ImageNet or pretrained weights can be fetched here, so the accuracy-versus-maps-received curves
and the uncertainty predictor come from a small CNN trained on the 1,797 real 8x8 handwritten
digits that ship inside scikit-learn (design notes, section 6.2):

1. Data: ``X / 16`` as 1x8x8 images, a stratified 70/30 split (``random_state=0``); the test part
   halves into a calibration half (even positions: surrogate fit, entropy threshold) and an
   evaluation half (odd positions: every table).
2. CNN with four split points mirroring the paper's L1-L4: conv 1->16 [j1: 16 maps 8x8], conv
   16->32 + pool [j2: 32 maps 4x4], conv 32->64 [j3: 64 maps 4x4], conv 64->128 + pool
   [j4: 128 maps 2x2], global average pool, fc 10.
3. Training (Adam 3e-3, batch 64), then first-order Taylor importance per map (Molchanov:
   ``sum over the filter of (w dL/dw)^2``, accumulated over the training set).
4. Masked fine-tuning: in every batch, at every split, each sample keeps a random count k of its
   top maps in importance order (the rest zeroed); loss = the sum of those CEs + CE(full), with a
   cosine learning-rate decay, so that the model tolerates missing maps (without it the curves are
   not monotone).
5. Per split: accuracy at ``k in {1, ceil(K/16), ..., K}`` in importance and in index order,
   per-sample correctness, the true entropy and an MLP entropy predictor's estimate
   (``[GAP of received maps, mask, k/K] -> 64 -> 1``, MSE, a fresh k per sample and epoch), the
   surrogate fit (14) and the entropy threshold: the largest that loses at most
   ``threshold_loss`` accuracy on the calibration half.

Everything is seeded (``torch.Generator`` and ``numpy.random.Generator``) and single-threaded, so
a seed rebuilds the same table.  Run as ``splitrl enachi-data build [--out PATH] [--seed S]``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from .accuracy import TABLE_PATH, fit_surrogate, save_table

#: (channels, spatial side) of the four split points j1..j4
SPLITS = ((16, 8), (32, 4), (64, 4), (128, 2))


def _net(torch):
    nn = torch.nn

    class DigitsCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(
                [
                    nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU()),
                    nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
                    nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU()),
                    nn.Sequential(nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
                ]
            )
            self.fc = nn.Linear(128, 10)

        def head(self, h, j):
            """The rest of the network after split ``j`` (0-based) from its feature maps ``h``."""
            for block in self.blocks[j + 1 :]:
                h = block(h)
            return self.fc(h.mean((2, 3)))

        def features(self, x, j):
            for block in self.blocks[: j + 1]:
                x = block(x)
            return x

        def forward(self, x):
            return self.head(self.features(x, 0), 0)

    return DigitsCNN()


def _batches(n, batch, gen, torch):
    perm = torch.randperm(n, generator=gen)
    return [perm[i : i + batch] for i in range(0, n, batch)]


def sample_points(num_maps: int) -> np.ndarray:
    """``{1, ceil(K/16), 2 ceil(K/16)..., K}``: at most 17 map counts, ascending."""
    step = math.ceil(num_maps / 16)
    return np.unique(np.concatenate([[1], np.arange(step, num_maps + 1, step), [num_maps]])).astype(np.int64)


def build(
    *,
    seed: int = 0,
    epochs: int = 25,
    finetune_epochs: int = 12,
    predictor_epochs: int = 30,
    threshold_loss: float = 0.01,
    out: str | Path | None = TABLE_PATH,
    log=print,
) -> dict:
    """Train, measure and write the table; returns the arrays (also written to ``out`` unless
    ``None``)."""
    import scipy
    import sklearn
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        digits = load_digits()
        X = (digits.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
        y = digits.target.astype(np.int64)
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
        cal, ev = slice(0, None, 2), slice(1, None, 2)
        Xtr, ytr = torch.from_numpy(X_tr), torch.from_numpy(y_tr)
        Xte, yte = torch.from_numpy(X_te), torch.from_numpy(y_te)
        net = _net(torch)
        ce = torch.nn.functional.cross_entropy

        # 1. plain training
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        for _ in range(epochs):
            for idx in _batches(len(Xtr), 64, gen, torch):
                opt.zero_grad()
                ce(net(Xtr[idx]), ytr[idx]).backward()
                opt.step()
        with torch.no_grad():
            base_acc = float((net(Xte[ev]).argmax(1) == yte[ev]).float().mean())
        log(f"trained: evaluation-half accuracy {base_acc:.4f} ({time.perf_counter() - t0:.1f} s)")

        # 2. first-order Taylor importance per map of each split layer (the conv producing it)
        convs = [b[0] for b in net.blocks]
        importance = [torch.zeros(c.out_channels, dtype=torch.float64) for c in convs]
        for idx in _batches(len(Xtr), 64, gen, torch):
            net.zero_grad()
            ce(net(Xtr[idx]), ytr[idx], reduction="sum").backward()
            for j, conv in enumerate(convs):
                w = (conv.weight * conv.weight.grad).pow(2).sum((1, 2, 3))
                b = (conv.bias * conv.bias.grad).pow(2)
                importance[j] += (w + b).double().detach()
        orders = [torch.argsort(imp, descending=True, stable=True) for imp in importance]
        ranks = [torch.argsort(o, stable=True) for o in orders]  # rank of every map

        def keep_mask(j, k, index_order=False):
            """(B, K_j, 1, 1) masks keeping the top-``k`` maps per sample (``k``: (B,))."""
            r = torch.arange(SPLITS[j][0])[None] if index_order else ranks[j][None]
            return (r < k[:, None]).float()[:, :, None, None]

        def at_k(j, h, k, index_order=False):
            """Predictions and entropies at split ``j`` with ``k`` maps kept."""
            m = keep_mask(j, torch.full((len(h),), int(k)), index_order)
            p = torch.softmax(net.head(h * m, j), 1)
            return p.argmax(1), -(p * torch.log(p.clamp_min(1e-12))).sum(1)

        def pred_inputs(j, h, k):
            m = keep_mask(j, k)
            return torch.cat([(h * m).mean((2, 3)), m[:, :, 0, 0], (k.float() / SPLITS[j][0])[:, None]], 1)

        # 3. masked fine-tuning
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        steps = finetune_epochs * len(_batches(len(Xtr), 64, gen, torch))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
        for _ in range(finetune_epochs):
            for idx in _batches(len(Xtr), 64, gen, torch):
                # every split in every batch, each sample with its own random count of maps kept
                x, loss = Xtr[idx], 0.0
                for j in range(len(SPLITS)):
                    k = torch.randint(1, SPLITS[j][0] + 1, (len(idx),), generator=gen)
                    x = net.blocks[j](x)
                    loss = loss + ce(net.head(x * keep_mask(j, k), j), ytr[idx])
                loss = loss + ce(net.head(x, len(SPLITS) - 1), ytr[idx])  # and the full model
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        net.eval()
        with torch.no_grad():
            full_acc = float(np.mean(net(Xte[ev]).argmax(1).numpy() == y_te[ev]))
        log(f"fine-tuned: evaluation-half accuracy {full_acc:.4f} ({time.perf_counter() - t0:.1f} s)")

        arrays: dict = {"num_splits": len(SPLITS), "full_accuracy": full_acc}
        for j, (K, side) in enumerate(SPLITS):
            ks = sample_points(K)
            with torch.no_grad():
                h_tr, h_te = net.features(Xtr, j), net.features(Xte, j)

                pred_imp, ent_imp, pred_idx = [], [], []
                for k in ks:
                    p, e = at_k(j, h_te, k)
                    pred_imp.append(p)
                    ent_imp.append(e)
                    pred_idx.append(at_k(j, h_te, k, index_order=True)[0])
                correct = torch.stack(pred_imp, 1) == yte[:, None]  # (test, P)
                correct_index = torch.stack(pred_idx, 1) == yte[:, None]
                entropy_true = torch.stack(ent_imp, 1)

            # 4. the entropy predictor: [GAP of received maps, mask, k/K] -> 64 -> 1
            phi = torch.nn.Sequential(torch.nn.Linear(2 * K + 1, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
            popt = torch.optim.Adam(phi.parameters(), lr=3e-3)
            for _ in range(predictor_epochs):
                k = torch.randint(1, K + 1, (len(h_tr),), generator=gen)
                with torch.no_grad():
                    m = keep_mask(j, k)
                    p = torch.softmax(net.head(h_tr * m, j), 1)
                    target = -(p * torch.log(p.clamp_min(1e-12))).sum(1)
                    inp = pred_inputs(j, h_tr, k)
                for idx in _batches(len(h_tr), 128, gen, torch):
                    popt.zero_grad()
                    torch.nn.functional.mse_loss(phi(inp[idx])[:, 0], target[idx]).backward()
                    popt.step()
            with torch.no_grad():
                entropy_pred = torch.stack(
                    [phi(pred_inputs(j, h_te, torch.full((len(h_te),), int(k))))[:, 0] for k in ks], 1
                ).clamp_min(0.0)

            c_np, ci_np = correct.numpy(), correct_index.numpy()
            ep, et = entropy_pred.numpy(), entropy_true.numpy()
            acc_cal = c_np[cal].mean(0)
            a, b, c, rmse = fit_surrogate(ks / K, acc_cal)
            h_th = calibrate_threshold(c_np[cal], ep[cal], threshold_loss)
            corr = float(np.corrcoef(ep[ev].ravel(), et[ev].ravel())[0, 1])
            log(
                f"split j{j + 1} ({K} maps {side}x{side}): acc {c_np[ev].mean(0)[0]:.3f} at 1 map, "
                f"{c_np[ev].mean(0)[-1]:.3f} at all; fit a={a:.4f} b={b:.4f} c={c:.4f} (rmse {rmse:.3f}); "
                f"H_th {h_th:.3f}; predictor corr {corr:.2f}"
            )
            fields = {
                "num_maps": K,
                "side": side,
                "order": orders[j].numpy(),
                "ks": ks,
                "acc_importance": c_np[ev].mean(0),
                "acc_index": ci_np[ev].mean(0),
                "correct": c_np[ev],
                "correct_index": ci_np[ev],
                "entropy_pred": ep[ev].astype(np.float16),
                "entropy_true": et[ev].astype(np.float16),
                "fit": np.array([a, b, c]),
                "rmse": rmse,
                "entropy_threshold": h_th,
                "predictor_corr": corr,
            }
            arrays.update({f"s{j}_{k}": v for k, v in fields.items()})
        arrays["meta"] = json.dumps(
            {
                "seed": seed,
                "epochs": epochs,
                "finetune_epochs": finetune_epochs,
                "predictor_epochs": predictor_epochs,
                "threshold_loss": threshold_loss,
                "samples": {"train": len(X_tr), "calibration": len(X_te[cal]), "evaluation": len(X_te[ev])},
                "accuracy_before_finetune": base_acc,
                "versions": {
                    "torch": torch.__version__,
                    "sklearn": sklearn.__version__,
                    "scipy": scipy.__version__,
                    "numpy": np.__version__,
                },
            }
        )
    finally:
        torch.set_num_threads(threads)
    if out is not None:
        save_table(arrays, Path(out))
        log(f"wrote {out} ({time.perf_counter() - t0:.1f} s)")
    return arrays


def calibrate_threshold(correct: np.ndarray, entropy_pred: np.ndarray, loss: float) -> float:
    """The largest entropy threshold whose stopping rule (stop at the first sampled count whose
    predicted entropy is at most the threshold, else at all maps) loses at most ``loss`` accuracy
    against all maps, on these samples (``correct``, ``entropy_pred``: (S, P))."""
    full = correct[:, -1].mean()
    candidates = np.unique(np.round(entropy_pred.astype(float), 4))
    best = 0.0
    for th in candidates:  # accuracy is not monotone in th, so test every candidate
        stop = np.argmax(np.concatenate([entropy_pred[:, :-1] <= th, np.ones((len(correct), 1), bool)], 1), 1)
        if correct[np.arange(len(correct)), stop].mean() >= full - loss - 1e-12:
            best = max(best, float(th))
    return best
