"""Studies satellite_pass and pass_key_vs_elevation: the key of a satellite pass.

The Micius-like downlink runs at 850 nm (a source's wavelength may be 300-2000 nm; only classical
traffic in a fiber narrows it to the Raman spectrum's range).
"""

from __future__ import annotations

import csv
import math

import jax
import numpy as np
import pytest

import qmc
from qmc import cli
from qmc.analysis import AsymptoticTwoDecoy, FiniteLim2014
from qmc.freespace import Atmosphere, Pointing, Receiver, Satellite, satellite_pass as make_pass
from qmc.studies.pass_elevation import ELEVATION_COLUMNS, pass_key_vs_elevation
from qmc.studies.satellite import (ESTIMATES, SATELLITE_COLUMNS, optimize_pass, pass_model, satellite_pass)
from qmc.studies.settings import OptimizeSettings

SOURCE = qmc.WeakCoherentSource(rep_rate_hz=1e8, wavelength_nm=850.0)
DETECTOR = qmc.ThresholdDetectors(efficiency=0.5, p_dark=1e-7, misalignment=0.01)
PROTOCOL = qmc.DecoyBB84(intensities=(0.8, 0.1, 2e-4), probabilities=(0.5, 0.25, 0.25), p_z=0.5, key_basis="Z")
SATELLITE = Satellite(altitude_km=500.0, culmination_deg=49.0, min_elevation_deg=19.8, time_step_s=20.0,
                      divergence_urad=10.0, fixed_loss_db=10.0)
RX, POINTING = Receiver(aperture_m=1.0), Pointing(jitter_urad=1.0)
FINITE = FiniteLim2014(block_size=1e9, eps_sec=1e-10, eps_cor=1e-15, kappa=1e-15)
ANALYSES = {"finite_lim2014": FINITE, "asymptotic_two_decoy": AsymptoticTwoDecoy()}
NUMERIC_SLOT = ("time_s", "elevation_deg", "range_km", "slot_s", "loss_db", "rytov_variance", "fried_parameter_m",
                "qber", "sifted_rate_bps", "key_rate_bps")


def _run(atmosphere=Atmosphere(turbulence="lognormal"), satellite=SATELLITE, analyses=None, **kw):
    chunks = satellite_pass(jax.random.key(0), SOURCE, DETECTOR, PROTOCOL, analyses or {"finite_lim2014": FINITE},
                            satellite, RX, POINTING, atmosphere, **kw)
    return [r for c in chunks for r in c.rows]


def _summary(rows, analysis="finite_lim2014"):
    return {r["estimate"]: r for r in rows if r["kind"] == "summary" and r["analysis"] == analysis}


@pytest.fixture(scope="module")
def lognormal_rows():
    return _run(cutoffs=[19.8, 30.0], n_passes=40, optimize=OptimizeSettings(n_starts=1))


def test_rows_columns_and_summaries(lognormal_rows):
    rows = lognormal_rows
    assert all(set(r) == set(SATELLITE_COLUMNS) for r in rows)
    slots = [r for r in rows if r["kind"] == "slot"]
    assert len(slots) == len(make_pass(SATELLITE)) > 5
    for r in slots:
        for c in NUMERIC_SLOT:
            assert isinstance(r[c], float) and math.isfinite(r[c]), (c, r[c])
    assert min(r["range_km"] for r in slots) == pytest.approx(645.0, abs=2.0)  # the culmination
    assert set(_summary(rows)) == set(ESTIMATES)
    for r in _summary(rows).values():
        assert math.isfinite(r["key_per_pass_bits"]) and r["key_per_pass_bits"] > 0
    # the per-slot key rate is highest at culmination, the loss lowest
    peak = max(slots, key=lambda r: r["elevation_deg"])
    assert peak["key_rate_bps"] == max(r["key_rate_bps"] for r in slots)
    assert peak["loss_db"] == min(r["loss_db"] for r in slots)


def test_pooled_optimum_beats_the_configured_protocol(lognormal_rows):
    model = pass_model(SOURCE, DETECTOR, SATELLITE, RX, POINTING, Atmosphere(turbulence="lognormal"))
    _, _, configured = optimize_pass(FINITE, model, PROTOCOL, [19.8], OptimizeSettings(enabled=False))
    n_pulses = float(np.sum(np.asarray(model.link.slot_pulses)))
    assert _summary(lognormal_rows)["pooled"]["key_per_pass_bits"] >= float(configured.rate) * n_pulses > 0


def test_monte_carlo_median_within_statistical_reach(lognormal_rows):
    """The pooled expected key against the median of n Monte Carlo passes: the median's standard
    error is sqrt(pi / 2) sigma / sqrt(n) (sigma the passes' spread); 5 standard errors."""
    s = _summary(lognormal_rows)
    mc = s["monte_carlo_median"]
    n, sigma = mc["n_passes"], mc["key_per_pass_std"]
    assert sigma > 0 and mc["key_per_pass_q05"] <= mc["key_per_pass_bits"] <= mc["key_per_pass_q95"]
    tolerance = 5.0 * math.sqrt(math.pi / 2.0) * sigma / math.sqrt(n)
    assert abs(mc["key_per_pass_bits"] - s["pooled"]["key_per_pass_bits"]) <= tolerance


def test_fading_off_pooled_equals_mean_loss():
    rows = _run(atmosphere=Atmosphere(turbulence="none"), n_passes=4, optimize=OptimizeSettings(enabled=False))
    s = _summary(rows)
    assert s["pooled"]["key_per_pass_bits"] == s["mean_loss"]["key_per_pass_bits"] > 0


def test_pass_table_gives_the_rows_of_its_pass(tmp_path):
    atmosphere = Atmosphere(turbulence="none")
    computed = _run(atmosphere=atmosphere, n_passes=4, optimize=OptimizeSettings(enabled=False))
    slots = [r for r in computed if r["kind"] == "slot"]
    path = tmp_path / "pass.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["elevation_deg", "loss_db", "time_s"])  # any column order, rows reversed
        for r in reversed(slots):
            writer.writerow([repr(r["elevation_deg"]), repr(r["loss_db"]), repr(r["time_s"])])
    table = Satellite(min_elevation_deg=SATELLITE.min_elevation_deg, loss_table=str(path))
    from_table = _run(atmosphere=atmosphere, satellite=table, n_passes=4, optimize=OptimizeSettings(enabled=False))
    table_slots = [r for r in from_table if r["kind"] == "slot"]
    assert len(table_slots) == len(slots)
    for a, b in zip(slots, table_slots):
        assert b["range_km"] is None
        for c in NUMERIC_SLOT:
            if c != "range_km":
                assert b[c] == pytest.approx(a[c], rel=1e-12, abs=0.0), c
    assert _summary(from_table)["pooled"]["key_per_pass_bits"] == pytest.approx(
        _summary(computed)["pooled"]["key_per_pass_bits"], rel=1e-12)


def test_key_per_pass_increases_with_culmination():
    chunks = pass_key_vs_elevation(SOURCE, DETECTOR, PROTOCOL, ANALYSES, Satellite(
        altitude_km=500.0, min_elevation_deg=15.0, time_step_s=20.0, divergence_urad=10.0, fixed_loss_db=10.0),
        RX, POINTING, Atmosphere(turbulence="lognormal"), [25.0, 45.0, 65.0, 85.0],
        OptimizeSettings(n_starts=1))
    rows = [r for c in chunks for r in c.rows]
    assert all(set(r) == set(ELEVATION_COLUMNS) for r in rows)
    for label in ANALYSES:
        keys = [r["key_per_pass_bits"] for r in sorted((r for r in rows if r["analysis"] == label),
                                                       key=lambda r: r["culmination_deg"])]
        assert all(k > 0 for k in keys) and np.all(np.diff(keys) > 0), (label, keys)
    finite = {r["culmination_deg"]: r["key_per_pass_bits"] for r in rows if r["analysis"] == "finite_lim2014"}
    asym = {r["culmination_deg"]: r["key_per_pass_bits"] for r in rows if r["analysis"] == "asymptotic_two_decoy"}
    assert all(finite[c] < asym[c] for c in finite)


# ---------------------------------------------------------------------------------------------
# The qmc command
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("experiment", ["satellite_pass", "pass_key_vs_elevation"])
def test_experiment_composes(experiment):
    study, spec, _ = cli.prepare(cli.compose(f"experiment={experiment}"))
    assert study.name == experiment
    assert isinstance(spec["satellite"], Satellite) and isinstance(spec["atmosphere"], Atmosphere)
    assert spec["satellite"].altitude_km == 500.0 and spec["source"].wavelength_nm == 850.0
    assert spec["optimize"].enabled is True


def test_config_keys_of_the_issue():
    keys = ("satellite.altitude_km=600", "satellite.culmination_deg=60", "satellite.min_elevation_deg=15",
            "satellite.time_step_s=5", "satellite.divergence_urad=12", "receiver.aperture_m=0.6",
            "atmosphere.zenith_transmittance=0.7", "atmosphere.turbulence=gamma_gamma",
            "atmosphere.ground_cn2=1e-14", "atmosphere.wind_speed_m_s=15", "source.wavelength_nm=800",
            "satellite.fixed_loss_db=12", "satellite.window_s=100", "receiver.sky_radiance=1e-4",
            "pointing.jitter_urad=2", "atmosphere.station_altitude_m=1000", "optimize.enabled=false",
            "mc.n_passes=10")
    _, spec, _ = cli.prepare(cli.compose("experiment=satellite_pass", *keys))
    assert spec["satellite"].window_s == 100 and spec["atmosphere"].turbulence == "gamma_gamma"
    assert spec["receiver"].sky_radiance == 1e-4 and spec["mc"].n_passes == 10


@pytest.mark.parametrize("override, message", [
    ("satellite.altitude_km=50", "satellite.altitude_km = 50 is out of range"),
    ("atmosphere.turbulence=fog", "atmosphere.turbulence = fog"),
    ("receiver.aperture_m=0", "receiver.aperture_m = 0 is out of range"),
    ("atmosphere.zenith_transmittance=1.5", "atmosphere.zenith_transmittance = 1.5 is out of range"),
    ("pointing.jitter_urad=-1", "pointing.jitter_urad = -1 is out of range"),
    ("satellite.window_s=-5", "satellite.window_s"),
    ("mc.n_passes=1", "mc.n_passes = 1 is out of range"),
    ("sweep.min_elevation_deg.values=[5.0]", "sweep.min_elevation_deg = 5 is out of range"),
    ("satellite.loss_table=/nonexistent.csv", "satellite.loss_table = /nonexistent.csv: no such file"),
])
def test_bad_values_are_refused_in_one_line(override, message):
    with pytest.raises((qmc.ValidationError, cli.ConfigError)) as err:
        cli.prepare(cli.compose("experiment=satellite_pass", override))
    assert message in str(err.value) and "\n" not in str(err.value)
