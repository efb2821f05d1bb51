"""EMH-PPO physics (eqs. 1-3) against hand computations."""

import numpy as np
import pytest

from splitrl.worlds.emh.physics import path_gain, server_load, task_latency_energy, uplink_rates


def test_path_gain_and_shadowing():
    assert path_gain(10.0, 0.0) == pytest.approx(1e-3)
    assert path_gain(10.0, 10.0) == pytest.approx(1e-2)
    assert path_gain(2.0, -3.0, exponent=2.0) == pytest.approx(0.25 * 10**-0.3)


def test_uplink_rates_co_channel_interference():
    p = np.array([1.0, 0.5, 1.0])
    g = np.array([1e-6, 2e-6, 1e-7])
    ch = np.array([0, 0, 1])
    B, s2 = 1e6, 1e-9
    r = uplink_rates(p, g, ch, bandwidth_hz=B, noise_w=s2)
    expected = [B * np.log2(1 + 1e-6 / (s2 + 1e-6)), B * np.log2(1 + 1e-6 / (s2 + 1e-6)), B * np.log2(1 + 1e-7 / s2)]
    np.testing.assert_allclose(r, expected)
    # an idle device neither transmits nor interferes
    r2 = uplink_rates(p, g, ch, bandwidth_hz=B, noise_w=s2, active=[True, False, True])
    assert r2[1] == 0 and r2[0] == pytest.approx(B * np.log2(1 + 1e-6 / s2))
    # batched over leading dimensions
    rb = uplink_rates(np.tile(p, (4, 1)), np.tile(g, (4, 1)), np.tile(ch, (4, 1)), bandwidth_hz=B, noise_w=s2)
    np.testing.assert_allclose(rb, np.tile(r, (4, 1)))


def test_server_contention_counts():
    load = server_load([0, 1, 0, 0], [True, True, True, False])
    np.testing.assert_array_equal(load, [2, 1, 2, 0])


def test_latency_and_energy_equations():
    lat, en, parts = task_latency_energy(
        device_share=np.array([1.0, 0.0, 0.25]),
        tx_bits=np.array([0.0, 8e6, 2e6]),
        rate=np.array([0.0, 4e6, 1e6]),
        power_w=np.array([0.0, 0.5, 1.0]),
        load=np.array([0, 2, 1]),
        l0_s=0.1,
        total_macs=4e9,
        zeta_j_per_mmac=1e-5,
    )
    np.testing.assert_allclose(parts["local"], [0.5, 0.0, 0.125])
    np.testing.assert_allclose(parts["tx"], [0.0, 2.0, 2.0])
    np.testing.assert_allclose(parts["server"], [0.0, 0.2, 0.075])
    np.testing.assert_allclose(lat, [0.5, 2.2, 2.2])
    np.testing.assert_allclose(en, [1e-5 * 4000, 0.5 * 2.0, 1.0 * 2.0 + 1e-5 * 1000])
