"""Reproduction of a published coexistence noise measurement: the backward spontaneous Raman noise of
20 km of SMF pumped at 1550 nm, measured by the authors of J. Smith and R. Proietti (OECC/PSC 2025)
and published with their code (RAMAN_Charact.xlsx in github.com/jakessmith23/NetSquid_coexisting_Raman_noise),
against qmc's Raman model (``qmc experiment=smith2025_coexistence``: one band plan per measured
wavelength, the pump counter-propagating, Bob's filter the analyser's 0.5 nm RBW).

The measured powers, their locations and tolerances are read from
``experiments/smith2025_raman/published.csv`` (README.md there says where each comes from and why
the tolerance is 3 dB); the conditions (pump wavelength and power, fiber length and loss, RBW) from the
experiment's config. The study runs once on the published lengths only (about 5 s on a 2-core CPU,
compilation included); its ``raman_photons_per_s`` column, times h c / lambda, is qmc's power.
"""

from __future__ import annotations

import math
import re

import pytest

from qmc import cli
from qmc.channels.raman_spectrum import LIGHT_M_PER_S, PLANCK_J_S
from qmc.gallery import published_points

FOLDER = "smith2025_raman"
EXPERIMENT = "smith2025_coexistence"
SERIES = re.compile(r"(q\d+(?:\.\d+)?) P=([0-9.]+) dBm")


def _published(quantity: str) -> list[dict]:
    rows = published_points(FOLDER)
    assert rows, f"experiments/{FOLDER}/published.csv is missing or empty"
    out = [r for r in rows if r["quantity"] == quantity]
    assert out, quantity
    return out


@pytest.fixture(scope="module")
def run():
    """(spec, {(band plan, launch power dBm, length km): qmc's backward Raman power, dBm})."""
    lengths = sorted({r["x"] for r in _published("raman_power_dbm")})
    _, spec, chunks = cli.prepare(cli.compose(
        f"experiment={EXPERIMENT}", f"sweep.length_km.values=[{','.join(f'{x:g}' for x in lengths)}]",
        "optimize.mu.num=8", "~analysis.variants.infinite_decoy"))
    plans = spec["wdm_plan"]["plans"]
    power = {}
    for row in (row for chunk in chunks for row in chunk.rows):
        wavelength_m = float(plans[row["band_plan"]]["source"]["wavelength_nm"]) * 1e-9
        watts = float(row["raman_photons_per_s"]) * PLANCK_J_S * LIGHT_M_PER_S / wavelength_m
        power[(row["band_plan"], float(row["launch_power_dbm"]), float(row["length_km"]))] = 10.0 * math.log10(
            watts * 1e3)
    return spec, power


def test_the_config_is_the_measurement():
    # the measurement is backward scattering with nothing leaking (the floor is subtracted), seen
    # through the analyser's RBW; every published series is a band plan and launch power of the run
    _, spec, _ = cli.prepare(cli.compose(f"experiment={EXPERIMENT}"))
    (channel,) = spec["link"].classical.channels if hasattr(spec["link"].classical, "channels") else (
        spec["link"].classical,)
    assert channel.direction == "counter" and math.isinf(channel.isolation_db)
    assert channel.raman_coefficient is None  # qmc's spectrum is what is tested
    assert list(spec["wdm_plan"]["directions"]) == ["counter"]
    powers = set(spec["sweep"].launch_power_dbm.values)
    for row in _published("raman_power_dbm"):
        plan, power = SERIES.fullmatch(row["series"]).groups()
        assert plan in spec["wdm_plan"]["plans"] and float(power) in powers, row


def test_backward_raman_noise_within_tolerance_of_the_measurement(run):
    _, power = run
    rows = _published("raman_power_dbm")
    compared = [r for r in rows if r["tolerance"] is not None]
    assert len(compared) >= 5, "the comparison needs its asserted points"
    for row in compared:
        plan, launch = SERIES.fullmatch(row["series"]).groups()
        qmc = power[(plan, float(launch), row["x"])]
        assert abs(qmc - row["value"]) <= row["tolerance"], (row["series"], row["value"], qmc, row["location"])


def test_the_noise_is_linear_in_the_launch_power(run):
    # qmc's pump is undepleted: the noise follows the launch power dB for dB (the measurement does
    # not at 14 dBm, where Brillouin scattering depletes the pump: README.md)
    _, power = run
    for row in _published("raman_power_dbm"):
        plan, launch = SERIES.fullmatch(row["series"]).groups()
        others = [k for k in power if k[0] == plan and k[2] == row["x"] and k[1] != float(launch)]
        for other in others:
            assert power[other] - power[(plan, float(launch), row["x"])] == pytest.approx(other[1] - float(launch),
                                                                                      abs=1e-6)


def test_the_compared_pump_is_not_depleted(run):
    # the measured pump loss over the fiber against the loss qmc's undepleted pump has (alpha L)
    spec, _ = run
    for row in _published("pump_loss_db"):
        if row["tolerance"] is None:
            continue
        channel = spec["link"].classical
        channel = channel.channels[0] if hasattr(channel, "channels") else channel
        assert abs(float(channel.loss_db_per_km) * row["x"] - row["value"]) <= row["tolerance"], row
