"""Channel, energy and DNN-profile models against the papers' formulas and published figures."""

import numpy as np
import pytest

from splitrl.dnn import MODELS, PUBLISHED_GMACS, load_profile, partition_table, trace_profile
from splitrl.physics.channel import (
    average_gain,
    dbm_per_hz_to_w_per_hz,
    power_for_rate,
    rayleigh_gain,
    shannon_rate,
)


def test_noise_psd_conversion():
    assert dbm_per_hz_to_w_per_hz(-174.0) == pytest.approx(3.981e-21, rel=1e-3)
    assert dbm_per_hz_to_w_per_hz(30.0) == pytest.approx(1.0)


def test_average_gain_matches_table_ii_formula():
    d = np.array([150.0, 200.0, 250.0])
    expected = 3.0 * (3e8 / (4 * np.pi * 915e6 * d)) ** 3
    np.testing.assert_allclose(
        average_gain(d, antenna_gain=3.0, carrier_hz=915e6, path_loss_exp=3.0), expected, rtol=3e-3
    )  # c = 299 792 458 m/s vs the paper's 3e8


def test_rayleigh_fading_has_unit_mean_exponential_power():
    rng = np.random.default_rng(0)
    h = rayleigh_gain(np.full(200_000, 2e-11), rng)
    assert h.mean() == pytest.approx(2e-11, rel=0.01)
    assert h.std() == pytest.approx(2e-11, rel=0.01)  # exponential: std == mean
    assert np.all(h >= 0)


def test_shannon_rate_and_its_inverse():
    b, n0 = 2.5e5, 4e-21
    p = np.array([0.0, 1e-3, 0.3])
    r = shannon_rate(p, 6e-11, bandwidth_hz=b, noise_psd_w_per_hz=n0)
    np.testing.assert_allclose(r, b * np.log2(1 + p * 6e-11 / (b * n0)))
    np.testing.assert_allclose(power_for_rate(r, 6e-11, bandwidth_hz=b, noise_psd_w_per_hz=n0), p, atol=1e-15)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_profile_totals_match_torchvision_published_macs(model):
    prof = load_profile(model)
    assert prof["total_macs"] / 1e9 == pytest.approx(PUBLISHED_GMACS[model], rel=0.03)
    assert sum(n["macs"] for n in prof["nodes"]) == pytest.approx(prof["total_macs"])


@pytest.mark.parametrize("model", sorted(MODELS))
def test_partition_table_is_well_formed(model):
    t = partition_table(model)
    assert t.c[0] == 0 and t.c[-1] == 1 and np.all(np.diff(t.c) > 0)
    assert t.d[0] == 1 and t.d[-1] == 0 and np.all(t.d[1:-1] > 0)
    assert t.input_bits == 3 * 224 * 224 * 8
    # quantised features (8 bits per element) and an encoded input (1 bit) scale d_k exactly
    q = partition_table(model, 1.0, "all", feature_bits_per_element=8.0)
    assert q.input_bits == 3 * 224 * 224 and q.d[0] == 1
    np.testing.assert_allclose(q.d[1:] * q.input_bits, t.d[1:] * t.input_bits / 4)
    prof = load_profile(model)
    names = [n["name"] for n in prof["nodes"]]
    pos = {n: i for i, n in enumerate(names)}
    # topological order and a single crossing tensor at every interior point
    for n in prof["nodes"]:
        assert all(pos[p] < pos[n["name"]] for p in n["parents"])
    for pt in prof["layer_points"][1:-1]:
        i = pos[pt["cut"][0]]
        crossing = {p for n in prof["nodes"][i + 1 :] for p in n["parents"] if pos[p] <= i}
        assert crossing == {pt["cut"][0]}
        assert pt["device_macs"] == pytest.approx(sum(n["macs"] for n in prof["nodes"][: i + 1]))


def test_cached_profiles_equal_a_fresh_trace():
    for model in ("alexnet", "resnet18", "mobilenet_v2"):
        assert trace_profile(model) == load_profile(model)


#: torchvision's parameter counts (``sum(p.numel() for p in model.parameters())``, its docs' num_params)
PUBLISHED_PARAMS = {
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "mobilenet_v2": 3_504_872,
    "googlenet": 6_624_904,
}


@pytest.mark.parametrize("model", sorted(PUBLISHED_PARAMS))
def test_profiles_hold_every_parameter_once(model):
    """Per-operator parameter bytes (BatchNorm's folded into its producer) add up to torchvision's
    parameter count, and the last layer-level point holds them all on the device."""
    prof = load_profile(model)
    assert sum(n["param_bytes"] for n in prof["nodes"]) == 4 * PUBLISHED_PARAMS[model]
    pts = prof["layer_points"]
    assert pts[0]["device_param_bytes"] == 0 and pts[-1]["device_param_bytes"] == 4 * PUBLISHED_PARAMS[model]
    assert all(a["device_param_bytes"] <= b["device_param_bytes"] for a, b in zip(pts, pts[1:]))


def test_layer_parameters_match_the_paper_layers_of_lymdo():
    """Parameters per logical layer (AlexNet's 8, ResNet-18's 10; the LyMDO notes' table)."""
    want = {
        "alexnet": [23_296, 307_392, 663_936, 884_992, 590_080, 37_752_832, 16_781_312, 4_097_000],
        "resnet18": [9_536, 73_984, 73_984, 230_144, 295_424, 919_040, 1_180_672, 3_673_088, 4_720_640, 513_000],
    }
    for model, per_layer in want.items():
        cum = [p["device_param_bytes"] / 4 for p in load_profile(model)["layer_points"]]
        assert [b - a for a, b in zip(cum, cum[1:])] == per_layer, model
        assert load_profile(model)["layer_points"][-1]["out_bytes"] == 4000  # the 1000 logits, float32
