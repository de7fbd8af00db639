"""Optical turbulence along a slant path: the Hufnagel-Valley C_n^2 profile and what it gives.

Everything here follows L. C. Andrews and R. L. Phillips, *Laser Beam Propagation through Random
Media*, 2nd ed. (SPIE, 2005), chapter 12 (propagation through the atmosphere: ground-to-space
uplinks and space-to-ground downlinks), written with the zenith angle zeta of the path (elevation =
90 deg - zeta) and the height z = h - h0 above the ground station at altitude h0:

* **Hufnagel-Valley profile** (HV; A&P 2005, Eq. (12.1), heights h in m above sea level):

      C_n^2(h) = 0.00594 (v/27)^2 (1e-5 h)^10 e^{-h/1000} + 2.7e-16 e^{-h/1500} + A e^{-h/100}

  with A the ground turbulence (m^-2/3) and v the rms wind speed (m/s). HV 5/7 is A = 1.7e-14,
  v = 21 m/s; its name says what it gives at 0.5 um at zenith: r0 about 5 cm and theta0 about
  7 urad. With ``station_altitude_m`` = 0 (the default) the profile's heights are measured from the
  station; a station at h0 > 0 sees the profile from h0 up (less ground turbulence on a mountain).
* **Fried parameter**, plane wave (downlink; A&P 2005 chap. 12, downlink r0):
  r0 = [0.423 k^2 sec(zeta) int C_n^2(h) dh]^{-3/5}.
* **Isoplanatic angle** (downlink; A&P 2005 chap. 12):
  theta0 = [2.91 k^2 sec^{8/3}(zeta) int C_n^2(h) (h - h0)^{5/3} dh]^{-3/5}.
* **Rytov variance**. Downlink, plane wave (A&P 2005 chap. 12, the downlink scintillation index in
  weak fluctuations): sigma_R^2 = 2.25 k^{7/6} sec^{11/6}(zeta) int C_n^2(h) (h - h0)^{5/6} dh.
  This is the horizontal-path plane-wave integral 2.25 k^{7/6} int C_n^2(s) (L - s)^{5/6} ds (L - s
  the distance to the receiver) with s measured along the slant path, ds = sec(zeta) dh. For a
  point source at the ground (uplink, spherical wave) the weight becomes
  (h - h0)^{5/6} (1 - (h - h0)/(H - h0))^{5/6} with H the altitude of the far end (the spherical-wave
  weight z^{5/6} (1 - z/L)^{5/6}, which gives 0.5 C_n^2 k^{7/6} L^{11/6} on a uniform path):
  :func:`rytov_variance_spherical`. Neither includes the beam-wave (finite transmitter) terms or
  the beam wander of an uplink; that is what the beam-wander fading law of
  :mod:`qmc.freespace.fading` is for.
* **Scintillation index** of a plane wave: sigma_I^2 = sigma_R^2 in weak fluctuations, and in all
  regimes (zero inner scale; Andrews, Phillips, Hopen, Al-Habash, JOSA A 16, 1417 (1999); A&P
  2005 chap. 9):
  sigma_I^2 = exp[0.49 s/(1 + 1.11 s^{6/5})^{7/6} + 0.51 s/(1 + 0.69 s^{6/5})^{5/6}] - 1, s = sigma_R^2.

The sec(zeta) forms are the flat-Earth slant path; A&P use them for zenith angles up to about
60 deg (elevations down to 30 deg); below that they overestimate the path through the turbulence.
The altitude integrals use a fixed composite Gauss-Legendre rule over z = h - h0 in [0, 60 km]
(panels refined towards the ground: the 100 m ground term and the z^{5/6} and z^{5/3} weights),
within 1e-10 relative of adaptive quadrature (scipy.integrate.quad, tests); the profile above
60 km (e^{-40} of the 1.5 km scale-height term) is left out.
"""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np

from qmc._pytree import pytree_dataclass
from qmc.validation import Range

__all__ = [
    "HV57_GROUND_CN2", "HV57_WIND_SPEED_M_S", "PATH_TOP_M", "HufnagelValley", "hufnagel_valley_cn2",
    "path_quadrature", "cn2_moment", "wavenumber_per_m", "fried_parameter_m", "isoplanatic_angle_rad",
    "rytov_variance_plane", "rytov_variance_spherical", "scintillation_index_weak",
    "scintillation_index_plane", "large_scale_log_variance", "small_scale_log_variance",
]

HV57_GROUND_CN2 = 1.7e-14  # A of HV 5/7, m^-2/3
HV57_WIND_SPEED_M_S = 21.0  # v of HV 5/7
PATH_TOP_M = 60_000.0  # the altitude integrals stop this far above the station
# Panel edges of the altitude quadrature, m above the station: fine near the ground (the e^{-h/100}
# term and the (h - h0)^{5/6} weight), a few panels across the 10 km wind-shear bump.
_PANEL_EDGES_M = (0.0, 0.1, 1.0, 5.0, 20.0, 60.0, 150.0, 350.0, 700.0, 1_500.0, 3_000.0, 5_000.0,
                  7_500.0, 10_000.0, 13_000.0, 17_000.0, 22_000.0, 30_000.0, 40_000.0, PATH_TOP_M)
_NODES_PER_PANEL = 16


def hufnagel_valley_cn2(altitude_m, ground_cn2=HV57_GROUND_CN2, wind_speed_m_s=HV57_WIND_SPEED_M_S):
    """C_n^2(h) of the Hufnagel-Valley model in m^-2/3 at altitude h (m): A&P 2005, Eq. (12.1)."""
    h = jnp.asarray(altitude_m)
    wind_term = 0.00594 * (jnp.asarray(wind_speed_m_s) / 27.0) ** 2 * (1e-5 * h) ** 10 * jnp.exp(-h / 1000.0)
    return wind_term + 2.7e-16 * jnp.exp(-h / 1500.0) + jnp.asarray(ground_cn2) * jnp.exp(-h / 100.0)


@functools.lru_cache(maxsize=None)
def path_quadrature() -> tuple[np.ndarray, np.ndarray]:
    """Nodes z (m above the station) and weights (m) of the fixed rule for int_0^{60 km} f(z) dz:
    composite Gauss-Legendre, ``_NODES_PER_PANEL`` nodes on each panel of ``_PANEL_EDGES_M``."""
    x, w = np.polynomial.legendre.leggauss(_NODES_PER_PANEL)
    edges = np.asarray(_PANEL_EDGES_M)
    lo, hi = edges[:-1, None], edges[1:, None]
    nodes = 0.5 * (hi - lo) * x[None, :] + 0.5 * (hi + lo)
    weights = 0.5 * (hi - lo) * w[None, :]
    return nodes.ravel(), weights.ravel()


def cn2_moment(power, ground_cn2=HV57_GROUND_CN2, wind_speed_m_s=HV57_WIND_SPEED_M_S,
               station_altitude_m=0.0, path_length_m=None):
    """int_{h0}^{h0 + 60 km} C_n^2(h) (h - h0)^power [1 - (h - h0)/L]^{5/6} dh in m^{1/3 + power}.

    The last factor (the spherical-wave weight) only when ``path_length_m`` L (the far end's height
    above the station) is given; it is clipped at 0 beyond L.
    """
    z, w = path_quadrature()
    h0 = jnp.asarray(station_altitude_m)
    integrand = hufnagel_valley_cn2(h0 + z, ground_cn2, wind_speed_m_s) * z ** power
    if path_length_m is not None:
        integrand = integrand * jnp.clip(1.0 - z / jnp.asarray(path_length_m), 0.0, None) ** (5.0 / 6.0)
    return jnp.sum(integrand * w, axis=-1)


def wavenumber_per_m(wavelength_nm):
    """Optical wavenumber k = 2 pi / lambda in rad/m."""
    return 2.0 * math.pi / (jnp.asarray(wavelength_nm) * 1e-9)


def _sec(zenith_deg):
    return 1.0 / jnp.cos(jnp.deg2rad(jnp.asarray(zenith_deg)))


def fried_parameter_m(wavelength_nm, zenith_deg=0.0, ground_cn2=HV57_GROUND_CN2,
                      wind_speed_m_s=HV57_WIND_SPEED_M_S, station_altitude_m=0.0):
    """Plane-wave (downlink) Fried parameter r0 = [0.423 k^2 sec(zeta) int C_n^2 dh]^{-3/5}, m."""
    k = wavenumber_per_m(wavelength_nm)
    moment = cn2_moment(0.0, ground_cn2, wind_speed_m_s, station_altitude_m)
    return (0.423 * k ** 2 * _sec(zenith_deg) * moment) ** (-3.0 / 5.0)


def isoplanatic_angle_rad(wavelength_nm, zenith_deg=0.0, ground_cn2=HV57_GROUND_CN2,
                          wind_speed_m_s=HV57_WIND_SPEED_M_S, station_altitude_m=0.0):
    """Isoplanatic angle theta0 = [2.91 k^2 sec^{8/3}(zeta) int C_n^2 (h - h0)^{5/3} dh]^{-3/5}, rad."""
    k = wavenumber_per_m(wavelength_nm)
    moment = cn2_moment(5.0 / 3.0, ground_cn2, wind_speed_m_s, station_altitude_m)
    return (2.91 * k ** 2 * _sec(zenith_deg) ** (8.0 / 3.0) * moment) ** (-3.0 / 5.0)


def rytov_variance_plane(wavelength_nm, zenith_deg=0.0, ground_cn2=HV57_GROUND_CN2,
                         wind_speed_m_s=HV57_WIND_SPEED_M_S, station_altitude_m=0.0):
    """Downlink (plane wave) Rytov variance
    sigma_R^2 = 2.25 k^{7/6} sec^{11/6}(zeta) int C_n^2(h) (h - h0)^{5/6} dh (dimensionless)."""
    k = wavenumber_per_m(wavelength_nm)
    moment = cn2_moment(5.0 / 6.0, ground_cn2, wind_speed_m_s, station_altitude_m)
    return 2.25 * k ** (7.0 / 6.0) * _sec(zenith_deg) ** (11.0 / 6.0) * moment


def rytov_variance_spherical(wavelength_nm, zenith_deg=0.0, ground_cn2=HV57_GROUND_CN2,
                             wind_speed_m_s=HV57_WIND_SPEED_M_S, station_altitude_m=0.0,
                             far_end_altitude_m=500e3):
    """Uplink point-source (spherical wave) Rytov variance
    2.25 k^{7/6} sec^{11/6}(zeta) int C_n^2(h) (h - h0)^{5/6} (1 - (h - h0)/(H - h0))^{5/6} dh,
    H the far end's altitude (m). For a satellite (H >> 20 km) it is within H^-1 of the plane wave's.
    """
    k = wavenumber_per_m(wavelength_nm)
    length = jnp.asarray(far_end_altitude_m) - jnp.asarray(station_altitude_m)
    moment = cn2_moment(5.0 / 6.0, ground_cn2, wind_speed_m_s, station_altitude_m, path_length_m=length)
    return 2.25 * k ** (7.0 / 6.0) * _sec(zenith_deg) ** (11.0 / 6.0) * moment


def scintillation_index_weak(rytov_variance):
    """Weak-fluctuation (Rytov) scintillation index of a plane wave: sigma_I^2 = sigma_R^2."""
    return jnp.asarray(rytov_variance)


def scintillation_index_plane(rytov_variance):
    """Plane-wave scintillation index in all regimes (zero inner scale), Andrews et al. 1999:
    exp[0.49 s / (1 + 1.11 s^{6/5})^{7/6} + 0.51 s / (1 + 0.69 s^{6/5})^{5/6}] - 1, s = sigma_R^2.
    It is 1/alpha + 1/beta + 1/(alpha beta) of the Gamma-Gamma law's shapes."""
    s = jnp.asarray(rytov_variance)
    return jnp.expm1(large_scale_log_variance(s) + small_scale_log_variance(s))


def large_scale_log_variance(s):
    """ln(1 + sigma_x^2), the large-scale log-irradiance variance: 0.49 s / (1 + 1.11 s^{6/5})^{7/6}."""
    return 0.49 * s / (1.0 + 1.11 * s ** 1.2) ** (7.0 / 6.0)


def small_scale_log_variance(s):
    """ln(1 + sigma_y^2), the small-scale log-irradiance variance: 0.51 s / (1 + 0.69 s^{6/5})^{5/6}."""
    return 0.51 * s / (1.0 + 0.69 * s ** 1.2) ** (5.0 / 6.0)


@pytree_dataclass
class HufnagelValley:
    """A Hufnagel-Valley atmosphere seen from a ground station (config group ``atmosphere``).

    Args:
        ground_cn2: A, the ground-level turbulence in m^-2/3 (``atmosphere.ground_cn2``).
        wind_speed_m_s: v, the rms wind speed in m/s (``atmosphere.wind_speed_m_s``).
        station_altitude_m: h0, the station's altitude in m (``atmosphere.station_altitude_m``).
    Defaults are HV 5/7 at sea level.
    """

    ground_cn2: float = HV57_GROUND_CN2
    wind_speed_m_s: float = HV57_WIND_SPEED_M_S
    station_altitude_m: float = 0.0

    def checks(self):
        return [Range("ground_cn2", 0.0, 1e-10), Range("wind_speed_m_s", 0.0, 200.0),
                Range("station_altitude_m", -500.0, 9_000.0)]

    def _profile(self):
        return dict(ground_cn2=self.ground_cn2, wind_speed_m_s=self.wind_speed_m_s,
                    station_altitude_m=self.station_altitude_m)

    def cn2(self, altitude_m):
        """C_n^2 at ``altitude_m`` (above sea level), m^-2/3."""
        return hufnagel_valley_cn2(altitude_m, self.ground_cn2, self.wind_speed_m_s)

    def fried_parameter_m(self, wavelength_nm, zenith_deg=0.0):
        return fried_parameter_m(wavelength_nm, zenith_deg, **self._profile())

    def isoplanatic_angle_rad(self, wavelength_nm, zenith_deg=0.0):
        return isoplanatic_angle_rad(wavelength_nm, zenith_deg, **self._profile())

    def rytov_variance(self, wavelength_nm, zenith_deg=0.0):
        """The downlink (plane-wave) Rytov variance."""
        return rytov_variance_plane(wavelength_nm, zenith_deg, **self._profile())

    def scintillation_index(self, wavelength_nm, zenith_deg=0.0):
        """The downlink plane-wave scintillation index in all regimes."""
        return scintillation_index_plane(self.rytov_variance(wavelength_nm, zenith_deg))
