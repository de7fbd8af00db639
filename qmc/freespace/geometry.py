"""Pass geometry of a satellite in a circular orbit over a ground station.

Spherical Earth of radius R_E = 6371 km (the mean radius), satellite at altitude h on a circular
orbit of radius r = R_E + h. Three results, each from the triangle Earth centre - station -
satellite:

* **Slant range** at elevation el (law of cosines in that triangle):

      d(el) = sqrt(r^2 - R_E^2 cos^2 el) - R_E sin el,

  so d(90 deg) = h and d(0 deg) = sqrt(r^2 - R_E^2) (the range to the horizon).
* **Earth central angle** gamma between the station and the sub-satellite point at elevation el:
  gamma(el) = arccos(R_E cos el / r) - el; and back, at central angle gamma,
  d = sqrt(R_E^2 + r^2 - 2 R_E r cos gamma) and sin el = (r cos gamma - R_E) / d.
* **The pass**: the orbit's mean motion is n = sqrt(GM / r^3) (Kepler's third law; the period is
  T = 2 pi / n, about 94.6 min at 500 km). The station lies at a cross-track central angle beta
  from the orbital plane, fixed by the culmination elevation el_max: beta = gamma(el_max). With
  the along-track angle alpha = n t measured from the point of closest approach (t = 0 at
  culmination), the spherical right triangle gives cos gamma(t) = cos(n t) cos beta. The pass
  lasts while el(t) >= el_min, i.e. |t| <= arccos(cos gamma(el_min) / cos beta) / n.

Earth's rotation is neglected (the ground track is a great circle through a fixed station): at
LEO altitudes it changes the pass duration by a few per cent (the station moves by up to
465 m/s against the satellite's ~7.6 km/s) and makes a real pass slightly asymmetric; a pass
from a two-line element set (:mod:`qmc.freespace.tle`) includes it. References: any text on
orbital mechanics, e.g. D. A. Vallado, Fundamentals of Astrodynamics and Applications, 4th ed.
(Microcosm, 2013): Kepler's third law and the site-track geometry of a satellite.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from qmc._pytree import pytree_dataclass
from qmc.validation import ValidationError

__all__ = [
    "EARTH_RADIUS_KM", "GM_EARTH_KM3_PER_S2", "Pass", "slant_range_km", "elevation_from_range_deg",
    "central_angle_rad",
    "elevation_from_central_angle_deg", "orbital_period_s", "mean_motion_rad_per_s",
    "pass_elevation_range", "pass_half_duration_s", "circular_pass",
]

EARTH_RADIUS_KM = 6371.0  # mean radius of the Earth (spherical model)
GM_EARTH_KM3_PER_S2 = 398600.4418  # Earth's gravitational parameter (WGS 84 / EGM96)


@pytree_dataclass
class Pass:
    """A satellite pass as time slots: arrays of equal length, ordered in time.

    Args:
        time_s: the slots' times in s (0 at culmination for a computed pass; as given for a
            table).
        elevation_deg: elevation of the satellite seen from the station, deg.
        range_km: slant range, km (None for a pass given as a table of losses).
        slot_s: how long each slot lasts, s (a slot holds rep rate x slot_s pulses).
        loss_db: the total channel loss of each slot in dB, positive (None for a computed pass,
            whose loss comes from :mod:`qmc.freespace.budget`).
    """

    time_s: object
    elevation_deg: object
    range_km: object = None
    slot_s: object = None
    loss_db: object = None

    def __len__(self) -> int:
        return int(np.shape(self.time_s)[0])

    def select(self, mask) -> "Pass":
        """The slots where the boolean ``mask`` (concrete, one per slot) is true."""
        mask = np.asarray(mask, dtype=bool)
        pick = lambda x: None if x is None else np.asarray(x)[mask]  # noqa: E731
        return Pass(pick(self.time_s), pick(self.elevation_deg), pick(self.range_km),
                    pick(self.slot_s), pick(self.loss_db))

    def within(self, window_s) -> "Pass":
        """The slots within ``window_s`` seconds of culmination (the slot of highest elevation);
        None keeps them all."""
        if window_s is None:
            return self
        t = np.asarray(self.time_s, dtype=float)
        t_peak = t[int(np.argmax(np.asarray(self.elevation_deg)))]
        return self.select(np.abs(t - t_peak) <= float(window_s) + 1e-9 * max(1.0, float(window_s)))


def slant_range_km(elevation_deg, altitude_km, earth_radius_km=EARTH_RADIUS_KM):
    """Distance from the station to a satellite at ``altitude_km`` seen at ``elevation_deg``:
    d = sqrt((R + h)^2 - R^2 cos^2 el) - R sin el (spherical Earth)."""
    el = jnp.deg2rad(jnp.asarray(elevation_deg))
    r = earth_radius_km + jnp.asarray(altitude_km)
    R = earth_radius_km
    return jnp.sqrt(r**2 - (R * jnp.cos(el)) ** 2) - R * jnp.sin(el)


def elevation_from_range_deg(range_km, altitude_km, earth_radius_km=EARTH_RADIUS_KM):
    """The elevation at which a satellite at ``altitude_km`` is ``range_km`` away (the inverse of
    :func:`slant_range_km`): sin el = ((R + h)^2 - R^2 - d^2) / (2 R d)."""
    d = jnp.asarray(range_km)
    r = earth_radius_km + jnp.asarray(altitude_km)
    R = earth_radius_km
    return jnp.rad2deg(jnp.arcsin(jnp.clip((r**2 - R**2 - d**2) / (2.0 * R * d), -1.0, 1.0)))


def central_angle_rad(elevation_deg, altitude_km, earth_radius_km=EARTH_RADIUS_KM):
    """Earth central angle between the station and the sub-satellite point at ``elevation_deg``:
    gamma = arccos(R cos el / (R + h)) - el."""
    el = jnp.deg2rad(jnp.asarray(elevation_deg))
    r = earth_radius_km + jnp.asarray(altitude_km)
    return jnp.arccos(earth_radius_km * jnp.cos(el) / r) - el


def elevation_from_central_angle_deg(gamma_rad, altitude_km, earth_radius_km=EARTH_RADIUS_KM):
    """Elevation (deg) and slant range (km) of a satellite at central angle ``gamma_rad`` from the
    station: d = sqrt(R^2 + r^2 - 2 R r cos gamma), sin el = (r cos gamma - R) / d."""
    r = earth_radius_km + jnp.asarray(altitude_km)
    R = earth_radius_km
    cos_g = jnp.cos(jnp.asarray(gamma_rad))
    d = jnp.sqrt(R**2 + r**2 - 2.0 * R * r * cos_g)
    el = jnp.arcsin(jnp.clip((r * cos_g - R) / d, -1.0, 1.0))
    return jnp.rad2deg(el), d


def mean_motion_rad_per_s(altitude_km, earth_radius_km=EARTH_RADIUS_KM):
    """n = sqrt(GM / r^3), the angular speed of a circular orbit of radius r = R + h (rad/s)."""
    r = earth_radius_km + jnp.asarray(altitude_km)
    return jnp.sqrt(GM_EARTH_KM3_PER_S2 / r**3)


def orbital_period_s(altitude_km, earth_radius_km=EARTH_RADIUS_KM):
    """T = 2 pi sqrt(r^3 / GM) (Kepler's third law), s."""
    return 2.0 * jnp.pi / mean_motion_rad_per_s(altitude_km, earth_radius_km)


def pass_elevation_range(time_s, altitude_km, culmination_deg, earth_radius_km=EARTH_RADIUS_KM):
    """Elevation (deg) and slant range (km) at ``time_s`` from culmination of a circular-orbit pass
    whose highest elevation is ``culmination_deg`` (Earth's rotation neglected). Pure jnp: it
    traces, vmaps and differentiates in every argument."""
    beta = central_angle_rad(culmination_deg, altitude_km, earth_radius_km)
    alpha = mean_motion_rad_per_s(altitude_km, earth_radius_km) * jnp.asarray(time_s)
    cos_gamma = jnp.cos(alpha) * jnp.cos(beta)
    gamma = jnp.arccos(jnp.clip(cos_gamma, -1.0, 1.0))
    return elevation_from_central_angle_deg(gamma, altitude_km, earth_radius_km)


def pass_half_duration_s(altitude_km, culmination_deg, min_elevation_deg,
                         earth_radius_km=EARTH_RADIUS_KM):
    """Time from culmination until the elevation falls to ``min_elevation_deg``, s:
    arccos(cos gamma(el_min) / cos beta) / n (0 when the culmination is below the minimum)."""
    beta = central_angle_rad(culmination_deg, altitude_km, earth_radius_km)
    gamma_min = central_angle_rad(min_elevation_deg, altitude_km, earth_radius_km)
    ratio = jnp.clip(jnp.cos(gamma_min) / jnp.cos(beta), -1.0, 1.0)
    return jnp.arccos(ratio) / mean_motion_rad_per_s(altitude_km, earth_radius_km)


def circular_pass(altitude_km: float, culmination_deg: float, min_elevation_deg: float = 0.0,
                  time_step_s: float = 1.0, earth_radius_km: float = EARTH_RADIUS_KM) -> Pass:
    """The pass of a satellite in a circular orbit whose highest elevation is ``culmination_deg``,
    sampled every ``time_step_s`` seconds while the elevation is at least ``min_elevation_deg``.

    The slots sit at t = k dt (k = -K..K), symmetric about culmination (t = 0), each lasting dt.
    Called with concrete numbers (the number of slots sets array shapes); the geometry itself is
    :func:`pass_elevation_range`, which traces.
    """
    altitude_km, culmination_deg = float(altitude_km), float(culmination_deg)
    min_elevation_deg, time_step_s = float(min_elevation_deg), float(time_step_s)
    if not altitude_km > 0.0:
        raise ValidationError(f"satellite.altitude_km = {altitude_km:g} is out of range: must be > 0")
    if not time_step_s > 0.0:
        raise ValidationError(f"satellite.time_step_s = {time_step_s:g} is out of range: must be > 0")
    if not 0.0 < culmination_deg <= 90.0:
        raise ValidationError(
            f"satellite.culmination_deg = {culmination_deg:g} is out of range: must be in (0, 90]")
    if not 0.0 <= min_elevation_deg <= culmination_deg:
        raise ValidationError(
            f"satellite.min_elevation_deg = {min_elevation_deg:g}, satellite.culmination_deg = "
            f"{culmination_deg:g}: the minimum elevation must be in [0, culmination]")
    half = float(pass_half_duration_s(altitude_km, culmination_deg, min_elevation_deg,
                                      earth_radius_km))
    k_max = int(math.floor(half / time_step_s + 1e-9))
    time_s = np.arange(-k_max, k_max + 1, dtype=np.float64) * time_step_s
    elevation_deg, range_km = pass_elevation_range(time_s, altitude_km, culmination_deg,
                                                   earth_radius_km)
    return Pass(time_s, np.asarray(elevation_deg), np.asarray(range_km),
                np.full(time_s.shape, time_step_s))
