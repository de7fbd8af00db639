"""Raman noise from classical traffic in the quantum channel's fiber (qmc.channels.raman): the
closed forms against quadrature and against Eraerds et al. (2010), the shipped spectrum against an
independent evaluation of its fit, thermal factors, checks and the config group."""

from __future__ import annotations

import math
from pathlib import Path

import hydra.utils
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import integrate, special

import qmc
from qmc._pytree import replace_path
from qmc.channels import raman_spectrum as rs
from qmc.channels.raman import (
    ClassicalChannel, ClassicalTraffic, attenuation_per_km, backward_length_km, check_noise_inputs, dbm_to_w,
    forward_length_km, leakage_power_w, noise_clicks_per_gate, noise_photons_per_gate, noise_photons_per_s,
    raman_power_w,
)

CONF = Path(__file__).resolve().parents[1] / "conf" / "classical"
A = attenuation_per_km(0.2)  # 1/km at 0.2 dB/km
BETA = 3e-9  # a given Raman coefficient, 1/(km nm), for the propagation tests


def channel(direction="co", power_dbm=0.0, **fields):
    return ClassicalChannel(1550.0, power_dbm, direction, raman_coefficient=fields.pop("beta", BETA), **fields)


# ---------------------------------------------------------------------------------------------
# Propagation: Eraerds et al., NJP 12, 063027 (2010), and the unequal-loss forms
# ---------------------------------------------------------------------------------------------


def test_forward_noise_with_equal_losses_peaks_at_one_over_alpha():
    lengths = jnp.linspace(0.0, 100.0, 2001)  # 0.05 km steps
    power = raman_power_w(channel("co"), lengths, 0.2, 1550.0, 1.0)
    assert float(lengths[jnp.argmax(power)]) == pytest.approx(1.0 / float(A), abs=0.025)
    slope = jax.grad(lambda L: raman_power_w(channel("co"), L, 0.2, 1550.0, 1.0))(1.0 / A)
    assert abs(float(slope)) < 1e-25  # P' = P_in beta dl e^{-aL} (1 - aL) = 0 there
    # Eraerds' forward form: P_out beta L dlambda
    assert float(power[1000]) == pytest.approx(1e-3 * math.exp(-A * 50.0) * BETA * 50.0, rel=1e-12)


def test_backward_noise_saturates_at_effective_length_one_over_two_alpha():
    lengths = jnp.array([1.0, 10.0, 50.0, 100.0, 300.0, 1000.0])
    power = np.asarray(raman_power_w(channel("counter"), lengths, 0.2, 1550.0, 1.0))
    assert np.all(np.diff(power) > 0)
    saturated = 1e-3 * BETA / (2.0 * float(A))
    assert power[-1] == pytest.approx(saturated, rel=1e-12)
    # Eraerds' backward form: P_in beta dlambda (1 - e^{-2aL}) / (2a)
    assert power[2] == pytest.approx(saturated * -math.expm1(-2.0 * A * 50.0), rel=1e-12)


@pytest.mark.parametrize("direction", ["co", "counter"])
def test_raman_noise_is_linear_in_launch_power_and_filter_width(direction):
    base = float(raman_power_w(channel(direction), 25.0, 0.2, 1550.0, 0.1))
    doubled = float(raman_power_w(channel(direction, 10.0 * math.log10(2.0)), 25.0, 0.2, 1550.0, 0.1))
    assert doubled == pytest.approx(2.0 * base, rel=1e-12)
    assert float(raman_power_w(channel(direction), 25.0, 0.2, 1550.0, 0.3)) == pytest.approx(3.0 * base, rel=1e-12)


@pytest.mark.parametrize("a_c, a_q, length_km", [
    (attenuation_per_km(0.2), attenuation_per_km(0.33), 25.0),   # data at 1550 nm, quantum at 1310 nm
    (attenuation_per_km(0.33), attenuation_per_km(0.2), 80.0),
    (0.05, 0.01, 3.0),
    (0.0, 0.07, 40.0),
])
def test_unequal_loss_closed_forms_match_quadrature(a_c, a_q, length_km):
    a_c, a_q = float(a_c), float(a_q)
    forward = integrate.quad(lambda z: math.exp(-a_c * z - a_q * (length_km - z)), 0.0, length_km,
                             epsabs=0, epsrel=1e-13)[0]
    backward = integrate.quad(lambda s: math.exp(-(a_c + a_q) * s), 0.0, length_km, epsabs=0, epsrel=1e-13)[0]
    assert float(forward_length_km(length_km, a_c, a_q)) == pytest.approx(forward, rel=1e-11)
    assert float(backward_length_km(length_km, a_c, a_q)) == pytest.approx(backward, rel=1e-11)
    # the component's loss_db_per_km enters as a_c
    ch = channel("co", loss_db_per_km=a_c / float(attenuation_per_km(1.0)))
    expected = 1e-3 * BETA * 0.5 * forward
    assert float(raman_power_w(ch, length_km, a_q / float(attenuation_per_km(1.0)), 1550.0, 0.5)) == pytest.approx(
        expected, rel=1e-11)


def test_equal_loss_limit_is_continuous_finite_and_differentiable():
    length_km, a = 30.0, float(A)
    eraerds_forward = length_km * math.exp(-a * length_km)
    eraerds_backward = -math.expm1(-2.0 * a * length_km) / (2.0 * a)
    for eps in (0.0, 1e-16, 1e-14):  # the true change is -eps L / 2 relative: below 1e-12 here
        assert float(forward_length_km(length_km, a + eps, a)) == pytest.approx(eraerds_forward, rel=1e-12)
    for eps in (0.0, 1e-12, 1e-6):  # only a_c + a_q matters backwards
        assert float(backward_length_km(length_km, a + eps, a - eps)) == pytest.approx(eraerds_backward, rel=1e-12)
    # across the switch from the series to expm1 (|x| = 1e-3) the value is continuous
    for x in (1e-3, -1e-3):
        below, above = (forward_length_km(1.0, a + x * (1 - s), a) for s in (1e-9, -1e-9))
        assert float(below) == pytest.approx(float(above), rel=1e-11)
    # no NaN at L = 0, at a_c = a_q, at zero loss; finite gradients everywhere there
    for f in (forward_length_km, backward_length_km):
        for L, ac, aq in ((0.0, a, a), (0.0, 0.0, 0.0), (10.0, a, a), (10.0, 0.0, 0.0), (0.0, 0.1, 0.02)):
            value = f(L, ac, aq)
            grads = jax.grad(f, argnums=(0, 1, 2))(jnp.float64(L), jnp.float64(ac), jnp.float64(aq))
            assert np.isfinite(float(value)) and all(np.isfinite(float(g)) for g in grads), (f.__name__, L, ac, aq)
        assert float(f(10.0, 0.0, 0.0)) == pytest.approx(10.0, rel=1e-15)  # lossless: L
    # gradient in a_c at a_c = a_q against a central finite difference
    g = jax.grad(lambda ac: forward_length_km(length_km, ac, a))(jnp.float64(a))
    fd = (float(forward_length_km(length_km, a + 1e-6, a)) - float(forward_length_km(length_km, a - 1e-6, a))) / 2e-6
    assert float(g) == pytest.approx(fd, rel=1e-6)
    power_grad = jax.grad(lambda p: raman_power_w(ClassicalChannel(1550.0, p, "counter"), 0.0, 0.2, 1310.0, 1.0))(0.0)
    assert np.isfinite(float(power_grad))


def test_channels_add_and_leakage_follows_the_direction():
    co = ClassicalChannel(1550.0, 0.0, "co", loss_db_per_km=0.2, isolation_db=100.0)
    counter = ClassicalChannel(1551.72, 3.0, "counter", isolation_db=90.0)
    both = ClassicalTraffic((co, counter))
    args = (25.0, 0.33, 1310.0, 0.8)
    assert float(raman_power_w(both, *args)) == pytest.approx(
        float(raman_power_w(co, *args)) + float(raman_power_w(counter, *args)), rel=1e-13)
    assert float(leakage_power_w(co, 25.0, 0.33)) == pytest.approx(1e-3 * 10 ** (-0.2 * 25 / 10) * 1e-10, rel=1e-12)
    assert float(leakage_power_w(counter, 25.0, 0.33)) == pytest.approx(float(dbm_to_w(3.0)) * 1e-9, rel=1e-12)
    assert float(leakage_power_w(ClassicalChannel(), 25.0, 0.2)) == 0.0  # isolation inf by default
    assert float(raman_power_w(None, 25.0, 0.2, 1310.0, 1.0)) == 0.0
    assert float(raman_power_w(ClassicalTraffic(), 25.0, 0.2, 1310.0, 1.0)) == 0.0
    even = ClassicalTraffic.evenly([1550.0, 1551.72, 1553.33], 3.0, "co")
    assert sum(float(dbm_to_w(c.launch_power_dbm)) for c in even.channels) == pytest.approx(float(dbm_to_w(3.0)))


def test_photons_per_gate_and_clicks_per_detector():
    power_w, wavelength_nm = 1e-15, 1310.0
    rate = float(noise_photons_per_s(power_w, wavelength_nm))
    assert rate == pytest.approx(power_w / (rs.PLANCK_J_S * rs.LIGHT_M_PER_S / 1310e-9), rel=1e-14)
    ch = ClassicalChannel(1550.0, 0.0, "co", loss_db_per_km=0.2, isolation_db=110.0)
    n = float(noise_photons_per_gate(ch, 25.0, 0.33, 1310.0, 1.0, 2.0))
    total_w = float(raman_power_w(ch, 25.0, 0.33, 1310.0, 1.0)) + float(leakage_power_w(ch, 25.0, 0.33))
    assert n == pytest.approx(float(noise_photons_per_s(total_w, 1310.0)) * 2e-9, rel=1e-13)
    # unpolarized noise: half the photons reach each detector, Poisson
    assert float(noise_clicks_per_gate(0.02, 0.1)) == pytest.approx(-math.expm1(-0.1 * 0.02 / 2), rel=1e-14)
    assert float(noise_clicks_per_gate(1e-12, 0.5)) == pytest.approx(0.25e-12, rel=1e-9)


def test_noise_vmaps_over_lengths_and_launch_powers():
    traffic = ClassicalTraffic((ClassicalChannel(1550.0, 0.0, "co", loss_db_per_km=0.2),
                                ClassicalChannel(1530.33, -3.0, "counter", loss_db_per_km=0.21)))
    lengths = jnp.linspace(0.0, 100.0, 7)
    powers = jnp.array([-10.0, 0.0, 5.0])

    def at(power_dbm, length_km):
        t = replace_path(traffic, "channels.0.launch_power_dbm", power_dbm)
        return noise_photons_per_gate(t, length_km, 0.33, 1310.0, 1.0, 1.0)

    grid = jax.jit(jax.vmap(jax.vmap(at, in_axes=(None, 0)), in_axes=(0, None)))(powers, lengths)  # (3, 7)
    assert grid.shape == (3, 7) and bool(jnp.all(jnp.isfinite(grid)))
    assert float(grid[2, 3]) == pytest.approx(float(at(5.0, lengths[3])), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# The spectrum: Hollenbeck and Cantrell (2002) Table 1, thermal factors, range
# ---------------------------------------------------------------------------------------------


def test_shipped_table_is_read_as_written():
    path = Path(rs.__file__).parent / "data" / rs.DATA_FILE
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    header, rows = lines[0].split(","), np.array([[float(x) for x in line.split(",")] for line in lines[1:]])
    modes = rs.load_modes()
    assert list(modes) == header and rows.shape == (13, 4)
    for j, key in enumerate(header):
        np.testing.assert_array_equal(modes[key], rows[:, j])
    # two rows of Table 1: the main peak's mode and the last one
    assert (modes["position_cm1"][4], modes["amplitude"][4], modes["gaussian_fwhm_cm1"][4]) == (463.0, 74.0, 135.33)
    assert (modes["position_cm1"][12], modes["lorentzian_fwhm_cm1"][12]) == (1215.0, 53.33)


def test_gain_shape_matches_the_fit_evaluated_independently():
    """g(Omega) = sum_i A_i / 2 [V_i(Omega - w_i) - V_i(Omega + w_i)], V the Fourier integral of the
    mode's envelope: (sqrt(pi) / Gamma) Re w((x + i gamma) / Gamma), w the Faddeeva function."""
    m, c = rs.load_modes(), 2.99792458e10
    w_i = 2 * math.pi * c * m["position_cm1"]
    gauss, lorentz = math.pi * c * m["gaussian_fwhm_cm1"], math.pi * c * m["lorentzian_fwhm_cm1"]

    def v(x):
        return (math.sqrt(math.pi) / gauss * special.wofz((x + 1j * lorentz) / gauss)).real

    def g(f_thz):
        om = 2 * math.pi * f_thz * 1e12
        return float((m["amplitude"] / 2 * (v(om - w_i) - v(om + w_i))).sum())

    grid, table, _ = rs.gain_table()
    peak = grid[np.argmax(table)]
    assert peak == pytest.approx(13.2, abs=0.1)  # the silica Raman peak, 440 cm^-1
    scale = g(peak)
    for f in (0.5, 2.0, 5.0, 10.0, 13.2, 14.5, 18.0, 25.0, 35.45, 40.0):
        assert float(rs.gain_shape(f)) == pytest.approx(g(f) / scale, abs=2e-6), f
    # the lookup returns the table at its nodes and is 0 at zero detuning and beyond the range
    np.testing.assert_array_equal(np.asarray(rs.gain_shape(grid[::40])), table[::40])
    assert float(rs.gain_shape(0.0)) == 0.0 and float(rs.gain_shape(rs.MAX_DETUNING_THZ + 1)) == 0.0


@pytest.mark.parametrize("detuning_thz, temperature_k", [(1.0, 300.0), (13.2, 300.0), (30.0, 250.0), (35.0, 350.0)])
def test_anti_stokes_over_stokes_is_the_boltzmann_factor(detuning_thz, temperature_k):
    nu_c = float(rs.frequency_thz(1550.0))
    stokes_nm, anti_nm = (rs.LIGHT_M_PER_S / ((nu_c + s * detuning_thz) * 1e12) * 1e9 for s in (-1, 1))
    ratio = float(rs.raman_coefficient_per_km_nm(1550.0, anti_nm, temperature_k)
                  / rs.raman_coefficient_per_km_nm(1550.0, stokes_nm, temperature_k))
    # beta ~ nu_q^3 (photon energy times dnu/dlambda) times the occupation
    boltzmann = math.exp(-rs.PLANCK_J_S * detuning_thz * 1e12 / (rs.BOLTZMANN_J_PER_K * temperature_k))
    assert ratio * ((nu_c - detuning_thz) / (nu_c + detuning_thz)) ** 3 == pytest.approx(boltzmann, rel=1e-9)


def test_coefficient_is_finite_at_zero_detuning_and_has_the_expected_size():
    beta = rs.raman_coefficient_per_km_nm
    at_zero = float(beta(1550.0, 1550.0))
    assert np.isfinite(at_zero) and at_zero > 0.0
    assert float(beta(1550.0, 1550.0 + 1e-6)) == pytest.approx(at_zero, rel=1e-4)
    assert float(beta(1550.0, 1550.0 - 1e-6)) == pytest.approx(at_zero, rel=1e-4)
    grads = jax.grad(beta, argnums=(0, 1, 2))(jnp.float64(1550.0), jnp.float64(1550.0), jnp.float64(300.0))
    assert all(np.isfinite(float(g)) for g in grads)
    # guards against unit slips, not a comparison with measurement: the model gives ~1e-12 for
    # 1550 nm light into 1310 nm (anti-Stokes, 35 THz) and ~1e-9 to 1e-8 in the C band
    assert 1e-12 < float(beta(1550.0, 1310.0)) < 1e-11
    assert 1e-9 < float(beta(1550.0, 1570.0)) < 1e-8


def test_spectrum_refuses_wavelengths_outside_its_range():
    assert rs.spectrum_problem(1550.0, 1310.0) is None
    assert rs.spectrum_problem(1550.0, 1200.0) == "source.wavelength_nm = 1200 is out of range: must be in [1260, 1675]"
    message = rs.spectrum_problem(1650.0, 1270.0)
    assert message.startswith("classical.wavelength_nm = 1650 and source.wavelength_nm = 1270 are 54.4 THz apart")
    with pytest.raises(qmc.ValidationError, match=r"^classical\.channels\.1\.wavelength_nm = 1675 and"):
        check_noise_inputs(ClassicalTraffic((ClassicalChannel(1550.0), ClassicalChannel(1675.0))), 1310.0, 1.0, 1.0)
    check_noise_inputs(ClassicalChannel(1650.0, raman_coefficient=1e-12), 1270.0, 1.0, 1.0)  # given: no spectrum
    with pytest.raises(qmc.ValidationError, match=r"^detector\.filter_nm = -0\.1 is out of range: must be > 0$"):
        check_noise_inputs(ClassicalChannel(), 1310.0, -0.1, 1.0)
    with pytest.raises(qmc.ValidationError, match=r"^detector\.gate_ns = 0 is out of range: must be > 0$"):
        check_noise_inputs(ClassicalChannel(), 1310.0, 1.0, 0.0)


@pytest.mark.parametrize("fields, message", [
    ({"direction": "sideways"}, "classical.direction = sideways: must be one of co, counter"),
    ({"wavelength_nm": 1800.0}, "classical.wavelength_nm = 1800 is out of range: must be in [1260, 1675]"),
    ({"raman_coefficient": -1e-9}, "classical.raman_coefficient = -1e-09 is out of range: must be >= 0 or null"),
    ({"loss_db_per_km": -0.2}, "classical.loss_db_per_km = -0.2 is out of range: must be >= 0 or null"),
    ({"isolation_db": -3.0}, "classical.isolation_db = -3 is out of range: must be >= 0"),
    ({"launch_power_dbm": 33.0}, "classical.launch_power_dbm = 33 is out of range: must be <= 30"),
])
def test_checks_name_the_key_and_the_range(fields, message):
    bad = ClassicalChannel(**fields)
    with pytest.raises(qmc.ValidationError) as err:
        qmc.validate(bad, "classical.")
    assert str(err.value) == message
    assert not bool(jax.jit(qmc.is_valid)(bad)) and bool(jax.jit(qmc.is_valid)(ClassicalChannel()))


@pytest.mark.parametrize("name", sorted(p.stem for p in CONF.glob("*.yaml")))
def test_classical_configs_instantiate_and_validate(name):
    from qmc import cli

    node = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"), resolve=True)
    cli.check_targets(node, "classical")  # a target the command layer accepts
    traffic = qmc.validate(hydra.utils.instantiate(node, _convert_="all"), "classical.")
    check_noise_inputs(traffic, 1310.0, 1.0, 1.0)
    n = float(noise_photons_per_gate(traffic, 25.0, 0.33, 1310.0, 1.0, 1.0))
    assert np.isfinite(n) and (n == 0.0) == (name == "none")
