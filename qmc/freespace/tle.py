"""A real pass from a two-line element set (TLE), through the optional ``sgp4`` package.

``sgp4`` (Brandon Rhodes' Python port of Vallado's SGP4: D. A. Vallado, P. Crawford,
R. Hujsak, T. S. Kelso, Revisiting Spacetrack Report #3, AIAA 2006-6753) propagates the TLE to
positions in the TEME frame (true equator, mean equinox of date). qmc turns them into the
elevation and range seen from a ground station itself:

1. TEME to Earth-fixed: a rotation about the z axis by the Greenwich mean sidereal time (the
   IAU-82 expression, as in Vallado, Fundamentals of Astrodynamics and Applications, and in
   ``sgp4.propagation.gstime``, taking UT1 = UTC); polar motion is neglected (tens of metres).
2. The station on the WGS 84 ellipsoid (geodetic latitude, longitude, height above the
   ellipsoid) in Earth-fixed coordinates.
3. Elevation = arcsin(rho . up / |rho|) with rho the station-to-satellite vector and ``up`` the
   ellipsoid normal at the station; range = |rho|.

:func:`pass_from_tle` looks for the next pass above ``min_elevation_deg`` after a start time
(the TLE's epoch unless given), on a coarse grid (``search_step_s``; a pass shorter than that
above the minimum can be missed), refines its rise, culmination and set by bisection and
golden-section search, and samples it every ``time_step_s`` from culmination (t = 0) outwards.
:func:`passes_in_window` repeats that search after each set and returns every pass whose
culmination falls in a window (e.g. one day), each sampled the same way.
Unlike :func:`qmc.freespace.geometry.circular_pass`, it includes Earth's rotation, the ellipsoid
and the orbit's eccentricity. Install with ``pip install 'qmc[satellite]'``.
"""

from __future__ import annotations

import datetime
import math
from typing import NamedTuple

import numpy as np

from qmc.freespace.geometry import Pass
from qmc.validation import ValidationError

__all__ = ["require_sgp4", "gmst_rad", "station_ecef_km", "look_angles", "next_pass_jd",
           "pass_from_tle", "TimedPass", "timed_passes_in_window", "passes_in_window", "jd_to_utc"]

WGS84_A_KM = 6378.137
WGS84_F = 1.0 / 298.257223563
SECONDS_PER_DAY = 86400.0


def require_sgp4():
    """The ``sgp4.api`` module, or an ImportError that says how to install it."""
    try:
        from sgp4 import api
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "a pass from a two-line element set needs the optional package sgp4: "
            "pip install 'qmc[satellite]' (or pip install sgp4)") from err
    return api


def gmst_rad(jd_ut1) -> np.ndarray:
    """Greenwich mean sidereal time (IAU-82) in [0, 2 pi), vectorized (sgp4's ``gstime`` on arrays)."""
    t = (np.asarray(jd_ut1, dtype=np.float64) - 2451545.0) / 36525.0
    seconds = (-6.2e-6 * t**3 + 0.093104 * t**2 + (876600.0 * 3600.0 + 8640184.812866) * t
               + 67310.54841)
    return np.mod(np.deg2rad(seconds / 240.0), 2.0 * math.pi)


def station_ecef_km(latitude_deg: float, longitude_deg: float, altitude_m: float = 0.0):
    """Earth-fixed position (km) and unit up vector of a station on the WGS 84 ellipsoid."""
    lat, lon = math.radians(latitude_deg), math.radians(longitude_deg)
    e2 = WGS84_F * (2.0 - WGS84_F)
    n = WGS84_A_KM / math.sqrt(1.0 - e2 * math.sin(lat) ** 2)
    h = altitude_m * 1e-3
    position = np.array([(n + h) * math.cos(lat) * math.cos(lon),
                         (n + h) * math.cos(lat) * math.sin(lon),
                         (n * (1.0 - e2) + h) * math.sin(lat)])
    up = np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)])
    return position, up


def _satrec(line1: str, line2: str):
    api = require_sgp4()
    try:
        sat = api.Satrec.twoline2rv(line1.strip(), line2.strip())
    except (ValueError, IndexError) as err:
        raise ValidationError(f"satellite TLE: cannot be read ({err})") from None
    return sat


def look_angles(sat, jd, fr, station) -> tuple[np.ndarray, np.ndarray]:
    """Elevation (deg) and range (km) of ``sat`` (an ``sgp4`` Satrec) at Julian dates jd + fr
    (arrays) from ``station`` = (position km, up) of :func:`station_ecef_km`."""
    jd, fr = np.broadcast_arrays(np.atleast_1d(np.asarray(jd, float)), np.asarray(fr, float))
    error, r_teme, _ = sat.sgp4_array(np.ascontiguousarray(jd), np.ascontiguousarray(fr))
    if np.any(error != 0):
        code = int(error[error != 0][0])
        raise ValueError(f"sgp4 could not propagate the TLE (error code {code}; "
                         "see sgp4.api.SGP4_ERRORS)")
    theta = gmst_rad(jd + fr)
    c, s = np.cos(theta), np.sin(theta)
    x, y, z = r_teme[:, 0], r_teme[:, 1], r_teme[:, 2]
    r_ecef = np.stack([c * x + s * y, -s * x + c * y, z], axis=-1)
    position, up = station
    rho = r_ecef - position
    range_km = np.linalg.norm(rho, axis=-1)
    elevation_deg = np.rad2deg(np.arcsin(np.clip(rho @ up / range_km, -1.0, 1.0)))
    return elevation_deg, range_km


def _bisect(f, lo: float, hi: float, tol: float = 1e-3) -> float:
    """A root of f between lo and hi where f changes sign."""
    f_lo = f(lo)
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        f_mid = f(mid)
        if (f_mid >= 0.0) == (f_lo >= 0.0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _golden_max(f, lo: float, hi: float, tol: float = 1e-3) -> float:
    """The maximum of a unimodal f on [lo, hi] (golden-section search)."""
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return 0.5 * (a + b)


def _start(sat, start_jd):
    if start_jd is None:
        return float(sat.jdsatepoch), float(sat.jdsatepochF)
    jd = float(math.floor(float(start_jd) - 0.5) + 0.5)  # the preceding midnight, as sgp4 splits
    return jd, float(start_jd) - jd


def next_pass_jd(line1: str, line2: str, latitude_deg: float, longitude_deg: float,
                 altitude_m: float = 0.0, *, min_elevation_deg: float = 10.0,
                 start_jd: float | None = None, search_days: float = 3.0,
                 search_step_s: float = 20.0) -> tuple[float, float, float]:
    """UTC Julian dates of the rise above ``min_elevation_deg``, the culmination and the set of
    the next pass after ``start_jd`` (arguments as :func:`pass_from_tle`)."""
    sat = _satrec(line1, line2)
    station = station_ecef_km(latitude_deg, longitude_deg, altitude_m)
    jd0, fr0 = _start(sat, start_jd)
    t_rise, t_peak, t_set = _find_pass(sat, station, jd0, fr0, min_elevation_deg, search_days,
                                       search_step_s)
    return tuple(jd0 + fr0 + t / SECONDS_PER_DAY for t in (t_rise, t_peak, t_set))


def _find_pass(sat, station, jd0, fr0, min_elevation_deg, search_days, search_step_s,
               missing_ok=False):
    """Seconds after jd0 + fr0 of the next pass's rise, culmination and set (None with
    ``missing_ok`` when no pass rises within ``search_days``)."""
    def elevation(t_s):
        return look_angles(sat, jd0, fr0 + np.asarray(t_s, float) / SECONDS_PER_DAY, station)[0]

    grid = np.arange(0.0, search_days * SECONDS_PER_DAY + search_step_s, search_step_s)
    up = elevation(grid) >= min_elevation_deg
    rises = np.flatnonzero(~up[:-1] & up[1:]) + 1
    if not rises.size and missing_ok:
        return None
    if not rises.size:
        raise ValueError(f"no pass above {min_elevation_deg:g} deg within {search_days:g} days "
                         "of the start")
    i_rise = int(rises[0])
    sets = np.flatnonzero(up[i_rise:-1] & ~up[i_rise + 1:]) + i_rise + 1
    if not sets.size:
        raise ValueError(f"the pass that rises above {min_elevation_deg:g} deg does not set "
                         f"within {search_days:g} days of the start")
    i_set = int(sets[0])
    above = lambda t: float(elevation(t)[0]) - min_elevation_deg  # noqa: E731
    t_rise = _bisect(above, grid[i_rise - 1], grid[i_rise])
    t_set = _bisect(above, grid[i_set - 1], grid[i_set])
    t_peak = _golden_max(lambda t: float(elevation(t)[0]), t_rise, t_set)
    return t_rise, t_peak, t_set


def pass_from_tle(line1: str, line2: str, latitude_deg: float, longitude_deg: float,
                  altitude_m: float = 0.0, *, min_elevation_deg: float = 10.0,
                  time_step_s: float = 1.0, start_jd: float | None = None,
                  search_days: float = 3.0, search_step_s: float = 20.0) -> Pass:
    """The next pass of the TLE's satellite above ``min_elevation_deg`` seen from the station at
    geodetic ``latitude_deg``, ``longitude_deg`` (east positive), ``altitude_m`` above the WGS 84
    ellipsoid, after ``start_jd`` (a UTC Julian date; default the TLE's epoch). A pass already
    in progress at the start is skipped; :func:`next_pass_jd` gives its dates.

    Returns a :class:`~qmc.freespace.geometry.Pass` sampled every ``time_step_s`` seconds, t = 0
    at culmination, with ``time_s``, ``elevation_deg``, ``range_km`` and ``slot_s``.
    """
    _check_sampling(min_elevation_deg, time_step_s)
    sat = _satrec(line1, line2)
    station = station_ecef_km(latitude_deg, longitude_deg, altitude_m)
    jd0, fr0 = _start(sat, start_jd)
    times = _find_pass(sat, station, jd0, fr0, min_elevation_deg, search_days, search_step_s)
    return _sample(sat, station, jd0, fr0, *times, min_elevation_deg, time_step_s)


def _check_sampling(min_elevation_deg, time_step_s) -> None:
    if not time_step_s > 0.0:
        raise ValidationError(f"satellite.time_step_s = {time_step_s:g} is out of range: must be > 0")
    if not 0.0 <= min_elevation_deg < 90.0:
        raise ValidationError(
            f"satellite.min_elevation_deg = {min_elevation_deg:g} is out of range: must be in [0, 90)")


def _sample(sat, station, jd0, fr0, t_rise, t_peak, t_set, min_elevation_deg, time_step_s) -> Pass:
    """The pass from ``t_rise`` to ``t_set`` (s after jd0 + fr0) every ``time_step_s`` from ``t_peak``."""
    k_lo = -int(math.floor((t_peak - t_rise) / time_step_s + 1e-9))
    k_hi = int(math.floor((t_set - t_peak) / time_step_s + 1e-9))
    time_s = np.arange(k_lo, k_hi + 1, dtype=np.float64) * time_step_s
    elevation_deg, range_km = look_angles(sat, jd0, fr0 + (t_peak + time_s) / SECONDS_PER_DAY,
                                          station)
    keep = elevation_deg >= min_elevation_deg - 1e-6  # the bisection's tolerance at the ends
    return Pass(time_s[keep], elevation_deg[keep], range_km[keep],
                np.full(int(keep.sum()), float(time_step_s)))


class TimedPass(NamedTuple):
    """One pass of :func:`timed_passes_in_window`: UTC Julian dates of its rise, culmination and
    set (above the minimum elevation) and the sampled :class:`~qmc.freespace.geometry.Pass`."""

    rise_jd: float
    culmination_jd: float
    set_jd: float
    the_pass: Pass


LOOKBACK_DAYS = 0.1  # a pass in progress at the start is found if it rose at most this long before


def timed_passes_in_window(line1: str, line2: str, latitude_deg: float, longitude_deg: float,
                           altitude_m: float = 0.0, *, min_elevation_deg: float,
                           time_step_s: float, start_jd: float | None = None, days: float = 1.0,
                           search_step_s: float = 20.0) -> list[TimedPass]:
    """Every pass whose culmination falls in [start, start + ``days``), in time order, with its
    dates (arguments as :func:`pass_from_tle`; ``start_jd`` None is the TLE's epoch).

    The search (:func:`_find_pass`, the next rise on a ``search_step_s`` grid) starts
    :data:`LOOKBACK_DAYS` before the start, so that a pass already above the minimum at the start
    counts when its culmination is in the window, and restarts one second after each set, so the
    passes are disjoint. A pass that has not set ``LOOKBACK_DAYS`` after the window's end raises
    ValueError (not a low-Earth orbit).
    """
    _check_sampling(min_elevation_deg, time_step_s)
    if not days > 0.0:
        raise ValidationError(f"orbit.days = {days:g} is out of range: must be > 0")
    sat = _satrec(line1, line2)
    station = station_ecef_km(latitude_deg, longitude_deg, altitude_m)
    jd0, fr0 = _start(sat, start_jd)
    end_s = days * SECONDS_PER_DAY
    offset = -LOOKBACK_DAYS * SECONDS_PER_DAY
    out = []
    while offset < end_s:
        search = (end_s - offset) / SECONDS_PER_DAY + LOOKBACK_DAYS
        found = _find_pass(sat, station, jd0, fr0 + offset / SECONDS_PER_DAY, min_elevation_deg,
                           search, search_step_s, missing_ok=True)
        if found is None:
            break
        t_rise, t_peak, t_set = (offset + t for t in found)
        if t_peak >= end_s:
            break
        if t_peak >= 0.0:
            the_pass = _sample(sat, station, jd0, fr0, t_rise, t_peak, t_set, min_elevation_deg,
                               time_step_s)
            out.append(TimedPass(*(jd0 + fr0 + t / SECONDS_PER_DAY for t in (t_rise, t_peak, t_set)),
                                 the_pass))
        offset = t_set + 1.0
    return out


def passes_in_window(line1: str, line2: str, latitude_deg: float, longitude_deg: float,
                     altitude_m: float = 0.0, *, min_elevation_deg: float, time_step_s: float,
                     start_jd: float | None = None, days: float = 1.0,
                     search_step_s: float = 20.0) -> list[Pass]:
    """The passes of :func:`timed_passes_in_window` (every pass whose culmination falls in
    [start, start + ``days``)), each sampled as :func:`pass_from_tle` samples one."""
    return [p.the_pass for p in timed_passes_in_window(
        line1, line2, latitude_deg, longitude_deg, altitude_m, min_elevation_deg=min_elevation_deg,
        time_step_s=time_step_s, start_jd=start_jd, days=days, search_step_s=search_step_s)]


def jd_to_utc(jd: float) -> str:
    """A UTC Julian date as ISO 8601 text to the second (``2019-12-09T16:38:29Z``)."""
    when = datetime.datetime(1970, 1, 1) + datetime.timedelta(days=float(jd) - 2440587.5)
    return (when + datetime.timedelta(microseconds=500_000)).strftime("%Y-%m-%dT%H:%M:%SZ")
