"""Pass geometry: slant range, circular-orbit passes, passes from a TLE (sgp4) and from a table."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import qmc
from qmc.freespace import Atmosphere, Satellite, satellite_pass
from qmc.freespace.geometry import (
    EARTH_RADIUS_KM, GM_EARTH_KM3_PER_S2, circular_pass, elevation_from_range_deg,
    orbital_period_s, pass_elevation_range, slant_range_km,
)
from qmc.freespace.pass_table import load_pass_table
from qmc.validation import ValidationError

R = EARTH_RADIUS_KM


@pytest.mark.parametrize("h", [300.0, 500.0, 1200.0])
def test_slant_range_at_zenith_and_horizon(h):
    assert float(slant_range_km(90.0, h)) == pytest.approx(h, rel=1e-12)
    assert float(slant_range_km(0.0, h)) == pytest.approx(math.sqrt((R + h) ** 2 - R**2), rel=1e-12)


def test_slant_range_law_of_cosines_and_inverse():
    h, el = 500.0, np.linspace(1.0, 90.0, 37)
    d = np.asarray(slant_range_km(el, h))
    # the triangle centre-station-satellite: (R + h)^2 = R^2 + d^2 + 2 R d sin(el)
    np.testing.assert_allclose(R**2 + d**2 + 2 * R * d * np.sin(np.radians(el)), (R + h) ** 2,
                               rtol=1e-12)
    np.testing.assert_allclose(np.asarray(elevation_from_range_deg(d, h)), el, atol=1e-9)


def test_orbital_period_kepler():
    # 500 km above the equatorial radius: the textbook 94.6 min; a geostationary orbit
    # (radius 42164.17 km) takes one sidereal day, 86164.09 s.
    assert float(orbital_period_s(500.0, earth_radius_km=6378.137)) / 60.0 == pytest.approx(94.6, abs=0.05)
    assert float(orbital_period_s(42164.17 - R)) == pytest.approx(86164.09, abs=2.0)
    assert float(orbital_period_s(500.0)) == pytest.approx(
        2 * math.pi * math.sqrt((R + 500.0) ** 3 / GM_EARTH_KM3_PER_S2), rel=1e-12)


@pytest.mark.parametrize("culmination", [90.0, 60.0, 25.0])
def test_circular_pass_culminates_symmetric_and_stops_at_min_elevation(culmination):
    h, el_min, dt = 500.0, 10.0, 2.0
    p = circular_pass(h, culmination, el_min, dt)
    t, el, d = np.asarray(p.time_s), np.asarray(p.elevation_deg), np.asarray(p.range_km)
    mid = len(t) // 2
    assert len(t) % 2 == 1 and t[mid] == 0.0
    np.testing.assert_allclose(t, -t[::-1])
    np.testing.assert_allclose(el, el[::-1], atol=1e-9)  # symmetric in time
    np.testing.assert_allclose(d, d[::-1], rtol=1e-12)
    assert el[mid] == pytest.approx(culmination, abs=1e-9) and np.argmax(el) == mid
    assert d.min() == pytest.approx(float(slant_range_km(culmination, h)), rel=1e-12)
    assert np.all(np.diff(el[: mid + 1]) > 0) and np.all(el >= el_min)
    beyond, _ = pass_elevation_range(t[-1] + dt, h, culmination)
    assert float(beyond) < el_min  # the grid stops at the last slot above the minimum
    np.testing.assert_allclose(np.asarray(p.slot_s), dt)


def test_pass_geometry_against_vectors():
    """The spherical-triangle pass against positions in 3D: orbit in the x-y plane, station at
    central angle beta from it."""
    h, culmination = 550.0, 40.0
    r = R + h
    beta = math.acos(R * math.cos(math.radians(culmination)) / r) - math.radians(culmination)
    n = math.sqrt(GM_EARTH_KM3_PER_S2 / r**3)
    t = np.linspace(-300.0, 300.0, 41)
    sat = r * np.stack([np.cos(n * t), np.sin(n * t), np.zeros_like(t)], axis=-1)
    station = R * np.array([math.cos(beta), 0.0, math.sin(beta)])
    rho = sat - station
    d = np.linalg.norm(rho, axis=-1)
    el = np.degrees(np.arcsin(rho @ (station / R) / d))
    el_model, d_model = pass_elevation_range(t, h, culmination)
    np.testing.assert_allclose(np.asarray(el_model), el, atol=1e-9)
    np.testing.assert_allclose(np.asarray(d_model), d, rtol=1e-12)


def test_circular_pass_refuses_bad_values():
    with pytest.raises(ValidationError, match="min_elevation_deg"):
        circular_pass(500.0, 20.0, 30.0, 1.0)
    with pytest.raises(ValidationError, match="time_step_s"):
        circular_pass(500.0, 60.0, 10.0, 0.0)


def test_satellite_checks_and_window():
    qmc.validate(Satellite(), "satellite.")
    with pytest.raises(ValidationError, match=r"satellite\.culmination_deg = .*minimum"):
        qmc.validate(Satellite(culmination_deg=5.0, min_elevation_deg=10.0), "satellite.")
    with pytest.raises(ValidationError, match="satellite.window_s"):
        qmc.validate(Satellite(window_s=-1.0), "satellite.")
    with pytest.raises(ValidationError, match="atmosphere.turbulence = foo"):
        qmc.validate(Atmosphere(turbulence="foo"), "atmosphere.")
    whole = satellite_pass(Satellite(culmination_deg=70.0, time_step_s=5.0))
    cut = satellite_pass(Satellite(culmination_deg=70.0, time_step_s=5.0, window_s=60.0))
    assert len(cut) == 25 and np.abs(np.asarray(cut.time_s)).max() == 60.0 and len(whole) > len(cut)


# ---------------------------------------------------------------- pass tables

def _write(tmp_path, text, name="pass.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_pass_table_sorts_rows_and_sets_slot_lengths(tmp_path):
    path = _write(tmp_path, "elevation_deg,time_s,loss_db,note\n"
                            "30,20,31.5,a\n10,0,38,b\n45,10,28.25,c\n50,15,27,d\n")
    p = load_pass_table(path)
    np.testing.assert_array_equal(np.asarray(p.time_s), [0, 10, 15, 20])
    np.testing.assert_array_equal(np.asarray(p.elevation_deg), [10, 45, 50, 30])
    np.testing.assert_array_equal(np.asarray(p.loss_db), [38, 28.25, 27, 31.5])
    np.testing.assert_array_equal(np.asarray(p.slot_s), [10, 5, 5, 5])  # last: previous spacing
    assert p.range_km is None
    # through the satellite config: the minimum elevation and the window still apply
    cut = satellite_pass(Satellite(loss_table=str(path), min_elevation_deg=20.0, window_s=5.0))
    np.testing.assert_array_equal(np.asarray(cut.time_s), [10, 15, 20])


@pytest.mark.parametrize("text, pattern", [
    ("time_s,elevation_deg\n0,10\n1,20\n", "missing column loss_db"),
    ("time_s,elevation_deg,loss_db\n0,10,30\n1,x,30\n", "line 3, column elevation_deg: 'x' is not a number"),
    ("time_s,elevation_deg,loss_db\n0,10,30\n1,20,-3\n", "line 3, column loss_db: -3 is out of range"),
    ("time_s,elevation_deg,loss_db\n0,95,30\n1,20,30\n", "line 2, column elevation_deg: 95"),
    ("time_s,elevation_deg,loss_db\n0,10,nan\n1,20,30\n", "line 2, column loss_db: 'nan' is not a finite"),
    ("time_s,elevation_deg,loss_db\n5,10,30\n5,20,30\n", "lines 2 and 3 have the same time 5"),
    ("time_s,elevation_deg,loss_db\n0,10,30\n", "has 1 row"),
    ("time_s,elevation_deg,loss_db\n0,10,30\n1,20\n", "line 3: 2 values for 3 columns"),
    ("", "is empty"),
])
def test_pass_table_errors_name_key_and_place(tmp_path, text, pattern):
    path = _write(tmp_path, text)
    with pytest.raises(ValidationError) as info:
        load_pass_table(path)
    message = str(info.value)
    assert message.startswith(f"satellite.loss_table = {path}") and "\n" not in message
    assert pattern in message


def test_pass_table_missing_file(tmp_path):
    with pytest.raises(ValidationError, match="satellite.loss_table = .*no such file"):
        load_pass_table(tmp_path / "absent.csv")


# ---------------------------------------------------------------- passes from a TLE

ISS_TLE = (  # ISS (ZARYA), epoch 2019-12-09 (the example TLE of the skyfield documentation)
    "1 25544U 98067A   19343.69339541  .00001764  00000-0  38792-4 0  9991",
    "2 25544  51.6439 211.2001 0007417  17.6667  85.6398 15.50103472202482",
)


def test_missing_sgp4_is_a_clear_error(monkeypatch):
    from qmc.freespace import tle
    monkeypatch.setitem(sys.modules, "sgp4", None)
    monkeypatch.setitem(sys.modules, "sgp4.api", None)
    with pytest.raises(ImportError, match=r"qmc\[satellite\]"):
        tle.pass_from_tle(*ISS_TLE, 48.0, 11.0)


@pytest.mark.parametrize("lat, lon", [(48.0, 11.0), (-33.9, 18.4)])
def test_tle_pass_peaks_at_culmination_and_matches_spherical_geometry(lat, lon):
    pytest.importorskip("sgp4")
    from sgp4.api import Satrec
    from sgp4.propagation import gstime

    from qmc.freespace.tle import gmst_rad, next_pass_jd, pass_from_tle, station_ecef_km
    assert float(gmst_rad(2458827.25)) == pytest.approx(gstime(2458827.25), abs=1e-12)
    p = pass_from_tle(*ISS_TLE, lat, lon, 0.0, min_elevation_deg=10.0, time_step_s=1.0)
    t, el, d = np.asarray(p.time_s), np.asarray(p.elevation_deg), np.asarray(p.range_km)
    peak = int(np.flatnonzero(t == 0.0)[0])
    assert np.argmax(el) == peak and np.argmin(d) == peak  # elevation peaks where range is least
    assert np.all(np.diff(el[: peak + 1]) > 0) and np.all(np.diff(el[peak:]) < 0)
    assert el.min() >= 10.0 - 1e-6 and 100 < len(t) < 800
    # the satellite's altitude at culmination, then the spherical slant range at each elevation
    rise, culmination, set_ = next_pass_jd(*ISS_TLE, lat, lon, min_elevation_deg=10.0)
    assert rise < culmination < set_
    jd = math.floor(culmination - 0.5) + 0.5
    _, r_teme, _ = Satrec.twoline2rv(*ISS_TLE).sgp4(jd, culmination - jd)
    station, _ = station_ecef_km(lat, lon)
    radius = float(np.linalg.norm(station))
    altitude = float(np.linalg.norm(r_teme)) - radius
    assert 400.0 < altitude < 440.0  # the ISS in December 2019
    spherical = np.asarray(slant_range_km(el, altitude, earth_radius_km=radius))
    np.testing.assert_allclose(spherical, d, rtol=0.02)
    # and the circular-orbit pass of the same culmination lasts about as long
    circular = circular_pass(altitude, el[peak], 10.0, 1.0)
    assert len(circular) == pytest.approx(len(t), rel=0.1)
    assert float(np.min(np.asarray(circular.range_km))) == pytest.approx(d[peak], rel=0.01)
