"""Turbulence along a slant path (qmc.freespace.turbulence): the Hufnagel-Valley profile, its
altitude quadrature against adaptive quadrature, HV 5/7's defining Fried parameter and isoplanatic
angle, Rytov variance and scintillation index."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import qmc
from qmc.freespace import turbulence as tb
from qmc.validation import ValidationError


def hv_numpy(h, a=1.7e-14, v=21.0):
    """The HV profile written out again (A&P 2005, Eq. 12.1), independently of the module."""
    return 0.00594 * (v / 27.0) ** 2 * (1e-5 * h) ** 10 * np.exp(-h / 1000.0) + 2.7e-16 * np.exp(-h / 1500.0) \
        + a * np.exp(-h / 100.0)


def quad_moment(power, a=1.7e-14, v=21.0, h0=0.0, far=None):
    def f(z):
        weight = 1.0 if far is None else max(1.0 - z / far, 0.0) ** (5.0 / 6.0)
        return hv_numpy(h0 + z, a, v) * z ** power * weight
    edges = [0.0, 1.0, 100.0, 1000.0, 5000.0, 10000.0, 20000.0, 40000.0, 60000.0]
    return sum(integrate.quad(f, lo, hi, epsabs=0.0, epsrel=1e-13, limit=200)[0]
               for lo, hi in zip(edges[:-1], edges[1:]))


def test_profile_matches_the_written_out_formula():
    h = np.array([0.0, 50.0, 1e3, 1e4, 2e4])
    np.testing.assert_allclose(tb.hufnagel_valley_cn2(h), hv_numpy(h), rtol=1e-14)
    np.testing.assert_allclose(tb.hufnagel_valley_cn2(h, 3e-13, 30.0), hv_numpy(h, 3e-13, 30.0), rtol=1e-14)
    assert float(tb.hufnagel_valley_cn2(0.0)) == pytest.approx(1.7e-14 + 2.7e-16, rel=1e-14)


@pytest.mark.parametrize("power", [0.0, 5.0 / 6.0, 5.0 / 3.0])
@pytest.mark.parametrize("a, v, h0", [(1.7e-14, 21.0, 0.0), (1.7e-13, 10.0, 0.0), (5e-15, 30.0, 2400.0)])
def test_altitude_quadrature_against_adaptive_quadrature(power, a, v, h0):
    mine = float(tb.cn2_moment(power, a, v, h0))
    assert mine == pytest.approx(quad_moment(power, a, v, h0), rel=1e-10)


def test_spherical_weight_against_adaptive_quadrature():
    far = 50e3  # a far end low enough that the weight matters
    mine = float(tb.cn2_moment(5.0 / 6.0, path_length_m=far))
    assert mine == pytest.approx(quad_moment(5.0 / 6.0, far=far), rel=1e-9)


def test_hv57_defines_r0_of_5_cm_and_theta0_of_7_urad():
    """HV 5/7 is named for r0 = 5 cm and theta0 = 7 urad at 0.5 um, zenith (A&P 2005, chap. 12)."""
    r0 = float(tb.fried_parameter_m(500.0))
    theta0 = float(tb.isoplanatic_angle_rad(500.0))
    assert 0.045 < r0 < 0.055
    assert 6.5e-6 < theta0 < 7.5e-6
    k = 2 * math.pi / 500e-9
    assert r0 == pytest.approx((0.423 * k ** 2 * quad_moment(0.0)) ** -0.6, rel=1e-10)
    assert theta0 == pytest.approx((2.91 * k ** 2 * quad_moment(5.0 / 3.0)) ** -0.6, rel=1e-10)


def test_zenith_and_wavelength_scalings():
    r0_z = tb.fried_parameter_m(800.0, 0.0)
    r0_60 = tb.fried_parameter_m(800.0, 60.0)
    assert float(r0_60 / r0_z) == pytest.approx(2.0 ** -0.6, rel=1e-12)  # sec 60 deg = 2
    assert float(tb.fried_parameter_m(1000.0) / tb.fried_parameter_m(500.0)) == pytest.approx(2.0 ** 1.2, rel=1e-12)
    s_z = tb.rytov_variance_plane(800.0, 0.0)
    assert float(tb.rytov_variance_plane(800.0, 60.0) / s_z) == pytest.approx(2.0 ** (11 / 6), rel=1e-12)
    assert float(tb.isoplanatic_angle_rad(800.0, 60.0) / tb.isoplanatic_angle_rad(800.0)) == pytest.approx(
        2.0 ** (-1.6), rel=1e-12)


def test_rytov_variance_against_the_integral():
    k = 2 * math.pi / 850e-9
    sec = 1.0 / math.cos(math.radians(40.0))
    expected = 2.25 * k ** (7 / 6) * sec ** (11 / 6) * quad_moment(5.0 / 6.0, h0=1000.0)
    assert float(tb.rytov_variance_plane(850.0, 40.0, station_altitude_m=1000.0)) == pytest.approx(expected, rel=1e-10)
    sph = tb.rytov_variance_spherical(850.0, 40.0, station_altitude_m=1000.0, far_end_altitude_m=51e3)
    expected_sph = 2.25 * k ** (7 / 6) * sec ** (11 / 6) * quad_moment(5.0 / 6.0, h0=1000.0, far=50e3)
    assert float(sph) == pytest.approx(expected_sph, rel=1e-9)
    # a satellite far end: the spherical weight is 1 - O(30 km / 500 km) over the turbulence
    ratio = float(tb.rytov_variance_spherical(850.0) / tb.rytov_variance_plane(850.0))
    assert 0.97 < ratio < 1.0


def test_a_mountain_station_sees_less_turbulence():
    assert float(tb.fried_parameter_m(500.0, station_altitude_m=2000.0)) > float(tb.fried_parameter_m(500.0))


def test_scintillation_index_limits():
    s = jnp.asarray([1e-4, 1e-3])
    np.testing.assert_allclose(tb.scintillation_index_plane(s), s, rtol=2e-3)  # weak: sigma_I^2 -> sigma_R^2
    assert np.all(np.asarray(tb.scintillation_index_weak(s)) == np.asarray(s))
    # strong fluctuations: saturation, sigma_I^2 -> exp(0.51 / 0.69^{5/6}) - 1 (about 1.0) as sigma_R^2 -> inf
    assert float(tb.scintillation_index_plane(1e6)) == pytest.approx(math.expm1(0.51 / 0.69 ** (5 / 6)), rel=1e-2)
    # the index peaks above 1 in the focusing regime (sigma_R^2 of a few)
    assert float(tb.scintillation_index_plane(4.0)) > 1.0


def test_jit_vmap_and_gradient():
    zen = jnp.linspace(0.0, 60.0, 5)
    r0 = jax.jit(jax.vmap(lambda z: tb.fried_parameter_m(500.0, z)))(zen)
    np.testing.assert_allclose(r0, [float(tb.fried_parameter_m(500.0, float(z))) for z in zen], rtol=1e-12)
    # d r0 / d A: r0 ~ (c + A m)^{-3/5}, negative; against a central difference
    f = lambda a: tb.fried_parameter_m(500.0, 0.0, a)
    g = float(jax.grad(f)(1.7e-14))
    fd = float((f(1.7e-14 * 1.001) - f(1.7e-14 * 0.999)) / (2e-3 * 1.7e-14))
    assert g < 0 and g == pytest.approx(fd, rel=1e-5)


def test_profile_validation():
    qmc.validate(tb.HufnagelValley())
    with pytest.raises(ValidationError, match="atmosphere.ground_cn2"):
        qmc.validate(tb.HufnagelValley(ground_cn2=-1e-14), "atmosphere.")
    hv = tb.HufnagelValley(station_altitude_m=500.0)
    assert float(hv.fried_parameter_m(500.0)) == float(tb.fried_parameter_m(500.0, station_altitude_m=500.0))
    assert float(hv.scintillation_index(500.0)) == float(tb.scintillation_index_plane(hv.rytov_variance(500.0)))
