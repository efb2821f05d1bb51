"""ENACHI's accuracy model: the hyperbolic surrogate (14), its inverse and fit on many random
instances, the digits table rebuilt tiny from a real CNN (its invariants and determinism) and
the shipped table against its schema."""

from __future__ import annotations

import numpy as np
import pytest

from splitrl.worlds.enachi.accuracy import (
    C_MIN,
    fit_surrogate,
    load_table,
    save_table,
    surrogate,
    surrogate_inverse,
    table_from_arrays,
)


def _params(rng, n):
    a = rng.uniform(0.5, 1.0, n)
    b = rng.uniform(1e-3, 0.2, n)
    c = rng.uniform(C_MIN, 0.5, n)
    return a, b, c


def test_surrogate_is_concave_non_decreasing_clipped_and_its_inverse_inverts_it():
    rng = np.random.default_rng(0)
    a, b, c = (v[:, None] for v in _params(rng, 2000))
    x = np.linspace(0.0, 1.5, 301)[None]
    A = surrogate(x, a, b, c)
    assert (A >= 0).all() and (A <= a + 1e-15).all()
    assert (np.diff(A, axis=1) >= -1e-15).all()
    inside = (x[:, 1:-1] < 1.0) & (A[:, 1:-1] > 0) & (A[:, :-2] > 0)
    second = A[:, 2:] - 2 * A[:, 1:-1] + A[:, :-2]
    assert (second[inside] <= 1e-12).all()  # concave where not clipped
    np.testing.assert_array_equal(A[:, x[0] >= 1.0], np.broadcast_to(A[:, [200]], A[:, x[0] >= 1.0].shape))
    # inverse: x(A(x)) = x on the increasing part; unreachable accuracies are inf
    xs = rng.uniform(0, 1, a.shape)
    acc = surrogate(xs, a, b, c)
    back = surrogate_inverse(acc, a, b, c)
    ok = acc > surrogate(0.0, a, b, c)
    np.testing.assert_allclose(back[ok], xs[ok], rtol=1e-9, atol=1e-12)
    assert np.isinf(surrogate_inverse(surrogate(1.0, a, b, c) + 1e-6, a, b, c)).all()
    assert (surrogate_inverse(0.0, a, b, c) == 0).all()


def test_fit_recovers_the_parameters_of_noise_free_curves():
    rng = np.random.default_rng(1)
    x = np.linspace(1 / 16, 1, 16)
    for a, b, c in zip(*_params(rng, 25)):
        if a - b / (x[0] + c) <= 0.05:  # clipped at 0: not identifiable
            continue
        fa, fb, fc, rmse = fit_surrogate(x, surrogate(x, a, b, c))
        assert rmse < 1e-6
        np.testing.assert_allclose(surrogate(x, fa, fb, fc), surrogate(x, a, b, c), atol=1e-5)
        assert fb > 0 and fc >= C_MIN and fa <= 1.0


@pytest.fixture(scope="module")
def tiny():
    from splitrl.worlds.enachi.digits import build

    return build(out=None, epochs=3, finetune_epochs=2, predictor_epochs=5, log=lambda m: None)


@pytest.mark.timeout(120)
def test_a_tiny_digits_build_has_the_tables_invariants(tiny):
    t = table_from_arrays(tiny)
    assert [s.num_maps for s in t.splits] == [16, 32, 64, 128]
    for s in t.splits:
        assert s.ks[0] == 1 and s.ks[-1] == s.num_maps and len(s.ks) <= 17 and (np.diff(s.ks) > 0).all()
        assert sorted(s.order.tolist()) == list(range(s.num_maps))
        # every map received: the full model's accuracy, in either order, per sample
        assert s.acc_importance[-1] == pytest.approx(t.full_accuracy, abs=1e-12)
        np.testing.assert_array_equal(s.correct[:, -1], s.correct_index[:, -1])
        np.testing.assert_allclose(s.correct.mean(0), s.acc_importance, atol=1e-12)
        # importance order: rising from few maps to all (a tiny build is noisy in between)
        assert s.acc_importance[-1] - s.acc_importance[0] > 0.3
        assert s.acc_importance[len(s.ks) // 2 :].min() > s.acc_importance[0]
        a, b, c = s.fit
        assert 0 < a <= 1 and b > 0 and c >= C_MIN and s.rmse < 0.15
        assert s.entropy_threshold >= 0
        assert np.corrcoef(s.entropy_pred.ravel(), s.entropy_true.ravel())[0, 1] > 0.5


@pytest.mark.timeout(120)
def test_the_build_repeats_under_a_seed_and_writes_atomically(tiny, tmp_path):
    from splitrl.worlds.enachi.digits import build

    again = build(out=tmp_path / "t.npz", epochs=3, finetune_epochs=2, predictor_epochs=5, log=lambda m: None)
    for k in tiny:
        np.testing.assert_array_equal(np.asarray(again[k]), np.asarray(tiny[k]), err_msg=k)
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"]  # no temporary left behind
    loaded = load_table(str(tmp_path / "t.npz"))
    assert loaded.full_accuracy == tiny["full_accuracy"]


def test_save_leaves_nothing_behind_when_writing_fails(tmp_path):
    with pytest.raises(TypeError):
        save_table({"bad": object()}, tmp_path / "x.npz")  # object arrays are refused
    assert list(tmp_path.iterdir()) == []


def test_the_shipped_table_loads_and_is_the_full_recipe():
    t = load_table()
    assert t.meta["seed"] == 0 and t.meta["epochs"] == 25 and t.meta["finetune_epochs"] == 12
    assert t.meta["samples"] == {"train": 1257, "calibration": 270, "evaluation": 270}
    assert t.full_accuracy > 0.97
    for s in t.splits:
        assert s.correct.shape == s.entropy_pred.shape == (270, len(s.ks))
        assert s.acc_importance[-1] == pytest.approx(t.full_accuracy)
        # the fine-tuned curves: within 3 samples (1.1 pp) of their running maximum past a quarter of the maps
        late = s.acc_importance[s.ks >= s.num_maps // 4]
        assert (np.maximum.accumulate(late) - late).max() <= 3 / 270 + 1e-12
        assert np.corrcoef(s.entropy_pred.ravel(), s.entropy_true.ravel())[0, 1] > 0.8
        # the importance order beats the index order on the area under the curve
        assert s.acc_importance.mean() > s.acc_index.mean()
