"""Studies ``wdm_band_plan`` and ``wdm_power_budget`` (:mod:`qmc.studies.wdm_plan`).

The O band (1310 nm, data at 1550 nm) reaches farther than the C band at a high launch power and
less far without traffic (its loss); the power budget is non-increasing in the fiber length, and the
key rate of wdm_coexistence is > 0 just below it and 0 just above it (>= 10 % of the noiseless
rate just below the 10 % budget, < 10 % just above); the experiments compose, run and refuse bad
plans in one line before compiling; the figures draw."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

import qmc
from qmc import cli, studies
from qmc.analysis import VacuumWeak
from qmc.channels.raman import ClassicalChannel
from qmc.studies.wdm import wdm_coexistence
from qmc.studies.wdm_plan import (
    BAND_PLAN_COLUMNS, POWER_BUDGET_COLUMNS, apply_plan, wdm_band_plan, wdm_power_budget,
)

matplotlib.use("Agg")

MU = np.geomspace(1e-3, 1.0, 40)
PROTO = qmc.DecoyBB84(intensities=(0.48, 0.05, 0.0), probabilities=(1.0, 0.0, 0.0), p_z=0.5, key_basis="both")
ANALYSES = {"vacuum_weak": VacuumWeak(f_ec=1.22)}
# The plans of conf/experiment/wdm_band_plan.yaml
PLANS = {
    "o_band": {"source": {"wavelength_nm": 1310.0}, "channel": {"loss_db_per_km": 0.33},
               "classical": {"wavelength_nm": 1550.0, "loss_db_per_km": 0.2, "isolation_db": 120.0}},
    "c_band": {"source": {"wavelength_nm": 1550.12}, "channel": {"loss_db_per_km": 0.2},
               "classical": {"wavelength_nm": 1549.32, "loss_db_per_km": 0.2, "isolation_db": 100.0}},
}
BUDGET_LENGTHS = [0.0, 10.0, 40.0, 70.0, 100.0]
STEP_DB = 0.05  # five times the bisection's tolerance (0.01 dB)


def _link():
    det = qmc.ThresholdDetectors(0.045, 8.5e-7, 0.033, "ma2005", filter_nm=0.8, gate_ns=1.0)
    data = ClassicalChannel(1550.0, 0.0, "co", loss_db_per_km=0.2, isolation_db=120.0)
    return qmc.Link(qmc.WeakCoherentSource(wavelength_nm=1550.0), qmc.Fiber(0.0, 0.2), det, data)


def _rows(chunks):
    return [row for chunk in chunks for row in chunk.rows]


def _one(rows, **match):
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, len(found))
    return found[0]


@pytest.fixture(scope="module")
def plan_rows():
    return _rows(wdm_band_plan(_link(), PROTO, ANALYSES, [60.0, 100.0], [-math.inf, -10.0], PLANS, ["co", "counter"],
                               MU))


@pytest.fixture(scope="module")
def budget_rows():
    return _rows(wdm_power_budget(_link(), PROTO, ANALYSES, BUDGET_LENGTHS, PLANS, ["co", "counter"], MU))


def test_band_plan_rows_have_the_columns_and_one_label_per_plan(plan_rows):
    assert studies.get("wdm_band_plan").columns == BAND_PLAN_COLUMNS
    assert len(plan_rows) == 2 * 2 * 2 * 2  # plans x directions x powers x lengths
    for row in plan_rows:
        assert set(row) == set(BAND_PLAN_COLUMNS)
    assert {(r["band_plan"], r["direction"]) for r in plan_rows} == {
        (p, d) for p in PLANS for d in ("co", "counter")}


def test_the_o_band_reaches_farther_at_high_power_and_the_c_band_without_traffic(plan_rows):
    for direction in ("co", "counter"):
        o = _one(plan_rows, band_plan="o_band", direction=direction, launch_power_dbm=-10.0, length_km=60.0)
        c = _one(plan_rows, band_plan="c_band", direction=direction, launch_power_dbm=-10.0, length_km=60.0)
        assert o["key_rate"] > 0.0 and c["key_rate"] == 0.0, (direction, o["key_rate"], c["key_rate"])
        # Raman noise photons: ~3 orders of magnitude fewer from 1550 nm into 1310 nm than next door
        assert o["raman_photons_per_s"] < 1e-2 * c["raman_photons_per_s"]
        # without traffic the O band's loss (0.33 dB/km) costs the reach: no key at 100 km
        o = _one(plan_rows, band_plan="o_band", direction=direction, launch_power_dbm=-math.inf, length_km=100.0)
        c = _one(plan_rows, band_plan="c_band", direction=direction, launch_power_dbm=-math.inf, length_km=100.0)
        assert o["key_rate"] == 0.0 < c["key_rate"]


def test_power_budget_is_non_increasing_in_length(budget_rows):
    assert studies.get("wdm_power_budget").columns == POWER_BUDGET_COLUMNS
    assert len(budget_rows) == len(BUDGET_LENGTHS) * 2 * 2
    for plan in PLANS:
        for direction in ("co", "counter"):
            for column in ("max_launch_power_dbm", "max_launch_power_dbm_10pct"):
                values = [_one(budget_rows, band_plan=plan, direction=direction, length_km=x)[column]
                          for x in BUDGET_LENGTHS]
                known = [v for v in values if v is not None]
                assert values[:len(known)] == known, (plan, direction, values)  # no key: only beyond the reach
                assert all(b <= a + 1e-9 for a, b in zip(known, known[1:])), (plan, direction, column, values)
    # the O band carries far more classical power at 40 km, in both directions
    for direction in ("co", "counter"):
        o = _one(budget_rows, band_plan="o_band", direction=direction, length_km=40.0)["max_launch_power_dbm"]
        c = _one(budget_rows, band_plan="c_band", direction=direction, length_km=40.0)["max_launch_power_dbm"]
        assert o > c + 20.0, (direction, o, c)
    # beyond the O band's reach without traffic: no budget at all
    assert _one(budget_rows, band_plan="o_band", direction="co", length_km=100.0)["max_launch_power_dbm"] is None


@pytest.mark.parametrize("plan, direction, length_km", [("c_band", "co", 40.0), ("o_band", "counter", 70.0)])
def test_the_budget_is_the_threshold_of_wdm_coexistence(budget_rows, plan, direction, length_km):
    row = _one(budget_rows, band_plan=plan, direction=direction, length_km=length_km)
    link = apply_plan(_link(), PLANS[plan], direction)
    p, p10, noiseless = row["max_launch_power_dbm"], row["max_launch_power_dbm_10pct"], row["key_rate_noiseless"]
    assert -80.0 < p10 <= p < 30.0 and noiseless > 0.0
    powers = [-math.inf, p - STEP_DB, p + STEP_DB, p10 - STEP_DB, p10 + STEP_DB]
    rates = [r["key_rate"] for r in _rows(wdm_coexistence(link, PROTO, ANALYSES, [length_km], powers, MU))]
    assert rates[0] == pytest.approx(noiseless, rel=1e-9)
    assert rates[1] > 0.0 and rates[2] == 0.0, rates
    assert rates[3] >= 0.1 * noiseless > rates[4], rates


def test_the_experiments_compose_validate_and_run():
    # the shapes and structure of the fixtures' runs, so that the compiled programs are reused
    small = ["optimize.mu.start=1e-3", "optimize.mu.num=40", "~analysis.variants.infinite_decoy"]
    study, spec, chunks = cli.prepare(cli.compose(
        "experiment=wdm_band_plan", "sweep.length_km.values=[60,100]", "sweep.launch_power_dbm.values=[-20,-10]",
        *small))
    assert study.name == "wdm_band_plan" and set(spec["wdm_plan"]["plans"]) == set(PLANS)
    rows = _rows(chunks)
    assert {(r["band_plan"], r["direction"]) for r in rows} == {(p, d) for p in PLANS for d in ("co", "counter")}
    assert len(rows) == 2 * 2 * 2 * 2 and {r["analysis"] for r in rows} == {"vacuum_weak"}
    study, spec, chunks = cli.prepare(cli.compose(
        "experiment=wdm_power_budget", "wdm_plan.directions=[counter]",
        f"sweep.length_km.values=[{','.join(f'{x:g}' for x in BUDGET_LENGTHS)}]", *small))
    rows = _rows(chunks)
    assert study.name == "wdm_power_budget" and len(rows) == 2 * len(BUDGET_LENGTHS)
    assert {r["direction"] for r in rows} == {"counter"}
    assert all(set(r) == set(POWER_BUDGET_COLUMNS) for r in rows)


@pytest.mark.parametrize("experiment, override, message", [
    ("wdm_band_plan", "wdm_plan.plans.o_band.source.wavelength_nm=1200",
     "wdm_plan.plans.o_band.source.wavelength_nm = 1200 is out of range: must be in [1260, 1675]"),
    ("wdm_band_plan", "wdm_plan.plans.c_band.channel.loss_db_per_km=-1",
     "wdm_plan.plans.c_band.channel.loss_db_per_km = -1 is out of range: must be >= 0"),
    ("wdm_power_budget", "wdm_plan.directions=[co,sideways]",
     "wdm_plan.directions[1] = sideways: must be one of co, counter"),
    ("wdm_power_budget", "power_budget.tol_db=0", "power_budget.tol_db = 0 is out of range: must be > 0"),
    ("wdm_power_budget", "power_budget.max_dbm=40", "power_budget.max_dbm = 40 is out of range: must be in [-200, 30]"),
    ("wdm_power_budget", "power_budget.min_dbm=30",
     "power_budget.max_dbm = 30 is out of range: must be > power_budget.min_dbm = 30"),
    ("wdm_band_plan", "classical=none",
     "classical: the band-plan studies need classical traffic in the fiber (e.g. classical=data_1550)"),
])
def test_bad_values_get_one_line_errors(experiment, override, message):
    with pytest.raises((qmc.ValidationError, cli.ConfigError)) as err:
        cli.prepare(cli.compose(f"experiment={experiment}", override))
    assert str(err.value) == message


def test_an_unknown_plan_field_is_named():
    with pytest.raises(qmc.ValidationError) as err:
        cli.prepare(cli.compose("experiment=wdm_band_plan", "+wdm_plan.plans.o_band.classical.colour=1"))
    text = str(err.value)
    assert text.startswith("wdm_plan.plans.o_band.classical.colour: unknown field of ClassicalChannel") and "\n" not in text


def test_the_figures_draw_one_panel_per_direction_and_criterion(plan_rows, budget_rows):
    from qmc.plots.wdm_plan import key_rate_vs_distance_band_plan, power_budget_vs_distance

    fig = key_rate_vs_distance_band_plan(plan_rows, title="wdm_band_plan · test")
    assert len(fig.axes) == 2 and all(ax.get_yscale() == "log" for ax in fig.axes)
    texts = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert "O band: quantum 1310 nm, data 1550 nm" in texts and "$P = -10$ dBm" in texts
    fig = power_budget_vs_distance(budget_rows, title="wdm_power_budget · test")
    assert len(fig.axes) == 2 and fig.axes[0].get_ylabel() == "Total classical launch power (dBm)"
    assert {len(ax.get_lines()) for ax in fig.axes} == {4}  # 2 plans x 2 directions
    fig.canvas.draw()
    legend = fig.axes[-1].get_legend()
    assert legend.get_window_extent().x0 >= fig.axes[-1].get_window_extent().x1  # outside the data
