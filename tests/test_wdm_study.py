"""Study ``wdm_coexistence``: key rate versus distance and total classical launch power.

The rows have the study's columns and no NaN; more launch power never gives more key; at -inf dBm
the rates are those of ``key_rate_vs_distance`` without traffic; the Raman photon rate is linear in
the launch power, split evenly over the channels; the experiment composes and validates; a launch
power axis without traffic, and bad values, are refused in one line before anything compiles.
Finite-key analyses (Lim et al. 2014, every parameter optimized): their rate stays below their
asymptotic limit at every point, the noise that kills the asymptotic key kills the finite one, and
the finite key ends at a shorter distance."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

import qmc
from qmc import cli, studies
from qmc.analysis import AsymptoticTwoDecoy, FiniteLim2014, InfiniteDecoy, VacuumWeak
from qmc.channels.raman import ClassicalChannel, ClassicalTraffic
from qmc.link import noise_click_probability
from qmc.studies.wdm import WDM_COLUMNS, wdm_coexistence

matplotlib.use("Agg")

LENGTHS = [0.0, 20.0, 50.0, 90.0]
POWERS = [-math.inf, -30.0, -20.0, -10.0]
MU = np.geomspace(1e-3, 1.0, 40)
PROTO = qmc.DecoyBB84(intensities=(0.48, 0.05, 0.0), probabilities=(1.0, 0.0, 0.0), p_z=0.5, key_basis="both")
ANALYSES = {"infinite_decoy": InfiniteDecoy(f_ec=1.22), "vacuum_weak": VacuumWeak(f_ec=1.22)}
DATA = ClassicalChannel(1549.32, 0.0, "co", isolation_db=100.0)  # the adjacent 100 GHz slot


def _link(classical=DATA):
    det = qmc.ThresholdDetectors(0.045, 8.5e-7, 0.033, "ma2005", filter_nm=0.8, gate_ns=1.0)
    return qmc.Link(qmc.WeakCoherentSource(wavelength_nm=1550.12), qmc.Fiber(0.0, 0.21), det, classical)


# Finite key beside asymptotic (the default experiment's analyses): a short chain per launch power.
FINITE_LENGTHS = [0.0, 20.0, 50.0, 90.0, 110.0]
FINITE_POWERS = [-math.inf, -20.0, -10.0]
FINITE_ANALYSES = {
    "finite_lim2014": FiniteLim2014(f_ec=1.22, eps_sec=1e-10, eps_cor=1e-15, kappa=1e-15, block_size=1e9),
    "asymptotic_two_decoy": AsymptoticTwoDecoy(f_ec=1.22),
    "infinite_decoy": InfiniteDecoy(f_ec=1.22),
}


def _rows(chunks):
    return [row for chunk in chunks for row in chunk.rows]


@pytest.fixture(scope="module")
def rows():
    return _rows(wdm_coexistence(_link(), PROTO, ANALYSES, LENGTHS, POWERS, MU))


@pytest.fixture(scope="module")
def finite_rows():
    return _rows(wdm_coexistence(_link(), PROTO, FINITE_ANALYSES, FINITE_LENGTHS, FINITE_POWERS, MU,
                                 finite_options={"mu3": 0.0, "seed": 0}))


def _by(rows, **match):
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def test_rows_have_the_columns_and_no_nan(rows):
    assert len(rows) == len(LENGTHS) * len(POWERS) * len(ANALYSES)
    assert studies.get("wdm_coexistence").columns == WDM_COLUMNS
    for name in ("length_km", "launch_power_dbm", "direction", "analysis", "raman_photons_per_s",
                 "noise_clicks_per_gate", "qber", "key_rate", "key_rate_bps", "mu", "reason"):
        assert name in WDM_COLUMNS
    for row in rows:
        assert set(row) == set(WDM_COLUMNS)
        assert row["direction"] == "co"
        for key, value in row.items():
            assert not (isinstance(value, float) and math.isnan(value)), (key, row)
    assert any(r["key_rate"] > 0 for r in rows) and any(r["key_rate"] == 0 for r in rows)


def test_more_launch_power_never_gives_more_key(rows):
    for length in LENGTHS:
        for label in ANALYSES:
            rates = [_by(rows, length_km=length, analysis=label, launch_power_dbm=p)[0]["key_rate"] for p in POWERS]
            for low, high in zip(rates, rates[1:]):
                assert high <= low * (1 + 1e-9) + 1e-15, (length, label, rates)
    # and the noise matters: at 90 km, -20 dBm costs key, -10 dBm all of it
    far = {p: _by(rows, length_km=90.0, analysis="infinite_decoy", launch_power_dbm=p)[0]["key_rate"] for p in POWERS}
    assert far[-20.0] < 0.5 * far[-math.inf] and far[-10.0] == 0.0


def test_at_minus_infinity_dbm_the_rate_is_the_rate_without_traffic(rows):
    plain = _rows(studies.key_rate_vs_distance(_link(None), PROTO, ANALYSES, LENGTHS, MU))
    for want in plain:
        got = _by(rows, length_km=want["length_km"], analysis=want["analysis"], launch_power_dbm=-math.inf)[0]
        assert got["key_rate"] == pytest.approx(want["key_rate"], rel=1e-12, abs=1e-12)
        assert (got["mu"] is None) == (want["mu"] is None)
        assert got["raman_photons_per_s"] == 0.0 and got["noise_clicks_per_gate"] == 0.0


def test_raman_photons_scale_linearly_with_launch_power(rows):
    for length in LENGTHS[1:]:
        low, high = (_by(rows, length_km=length, analysis="vacuum_weak", launch_power_dbm=p)[0] for p in (-30.0, -20.0))
        assert high["raman_photons_per_s"] == pytest.approx(10.0 * low["raman_photons_per_s"], rel=1e-9)
        assert high["leakage_photons_per_s"] == pytest.approx(10.0 * low["leakage_photons_per_s"], rel=1e-9)
        assert low["raman_photons_per_s"] > 100.0 * low["leakage_photons_per_s"] > 0.0  # Raman dominates
        # two detectors, each fired by the noise with p_noise (qmc.link), at the swept power
        link = _link(ClassicalChannel(1549.32, -20.0, "co", isolation_db=100.0))
        link = qmc.Link(link.source, qmc.Fiber(length, 0.21), link.detector, link.classical)
        assert high["noise_clicks_per_gate"] == pytest.approx(2.0 * float(noise_click_probability(link)), rel=1e-9)


def test_the_total_launch_power_is_split_evenly_over_the_channels():
    vw = {"vacuum_weak": ANALYSES["vacuum_weak"]}  # one analysis at the configured mu: quick to compile
    one = _rows(wdm_coexistence(_link(), PROTO, vw, [50.0], [-20.0]))
    two = _rows(wdm_coexistence(_link(ClassicalTraffic((DATA, DATA))), PROTO, vw, [50.0], [-20.0]))
    assert len(two) == 1 and two[0]["key_rate"] > 0
    for a, b in zip(one, two):
        assert b["raman_photons_per_s"] == pytest.approx(a["raman_photons_per_s"], rel=1e-9)
        assert b["key_rate"] == pytest.approx(a["key_rate"], rel=1e-9)


def test_the_experiment_composes_validates_and_runs_its_direction():
    study, spec, chunks = cli.prepare(cli.compose("experiment=wdm_coexistence"))
    assert study.name == "wdm_coexistence" and hasattr(chunks, "__next__")
    link = spec["link"]
    assert float(link.source.wavelength_nm) == 1550.12 and float(link.classical.wavelength_nm) == 1549.32
    assert link.classical.direction == "co"
    assert set(spec["analysis"]["variants"]) == {"infinite_decoy", "asymptotic_two_decoy", "finite_lim2014"}
    assert len(spec["sweep"].axis("launch_power_dbm")) >= 3 and spec["sweep"].axis("length_km")[-1] == 150.0
    small = ["sweep.length_km.values=[0,40]", "sweep.launch_power_dbm.values=[-25,-15]", "optimize.mu.num=20"]
    _, _, chunks = cli.prepare(cli.compose("experiment=wdm_coexistence", "analysis=asymptotic_decoy",
                                           "classical.direction=counter", *small))
    out = _rows(chunks)
    assert len(out) == 8 and {r["direction"] for r in out} == {"counter"}
    assert sorted({r["launch_power_dbm"] for r in out}) == [-25.0, -15.0]


def test_the_figure_has_one_colour_per_power_and_its_legend_outside(rows):
    from qmc.plots.wdm import key_rate_vs_distance_wdm

    fig = key_rate_vs_distance_wdm(rows, title="wdm_coexistence · test")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "test" in fig._suptitle.get_text()
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "no classical traffic" in texts and "$P = -20$ dBm" in texts and "Vacuum + weak decoy" in texts
    colours = {tuple(line.get_color()) for line in ax.get_lines()}
    assert len(colours) == len(POWERS)
    handles = ax.get_legend().legend_handles
    for line in ax.get_lines():  # a proxy legend: some entry has its colour, some its line style
        assert any(tuple(h.get_color()) == tuple(line.get_color()) for h in handles if h is not None)
        assert any(h.get_linestyle() == line.get_linestyle() for h in handles if h is not None)
    fig.canvas.draw()
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1  # outside the data


def test_a_launch_power_axis_without_traffic_is_refused_in_one_line():
    with pytest.raises(qmc.ValidationError) as err:
        cli.prepare(cli.compose("experiment=wdm_coexistence", "classical=none"))
    assert str(err.value).startswith("sweep.launch_power_dbm: ") and "\n" not in str(err.value)
    with pytest.raises(qmc.ValidationError, match=r"^sweep\.launch_power_dbm: "):
        wdm_coexistence(_link(None), PROTO, ANALYSES, LENGTHS, [-20.0], MU)


@pytest.mark.parametrize("override, message", [
    ("sweep.launch_power_dbm.values=[-20,40]", "sweep.launch_power_dbm[1] = 40 is out of range: must be <= 30"),
    ("sweep.launch_power_dbm.values=[]", "sweep.launch_power_dbm: needs at least one value"),
    ("sweep.length_km.values=[-5,10]", "sweep.length_km[0] = -5 is out of range: must be >= 0"),
    ("classical.direction=sideways", "classical.direction = sideways: must be one of co, counter"),
    ("source.wavelength_nm=1200", "source.wavelength_nm = 1200 is out of range: must be in [1260, 1675]"),
])
def test_bad_values_get_one_line_errors(override, message):
    with pytest.raises((qmc.ValidationError, cli.ConfigError)) as err:
        cli.prepare(cli.compose("experiment=wdm_coexistence", override))
    assert str(err.value) == message


def _rate(rows, analysis, power, length):
    return _by(rows, analysis=analysis, launch_power_dbm=power, length_km=length)[0]["key_rate"]


def test_finite_key_rows_are_complete_and_ordered(finite_rows):
    n_a = len(FINITE_ANALYSES)
    assert len(finite_rows) == len(FINITE_LENGTHS) * len(FINITE_POWERS) * n_a
    for i, row in enumerate(finite_rows):  # launch power, then length, then the analyses' order
        assert set(row) == set(WDM_COLUMNS)
        assert row["analysis"] == list(FINITE_ANALYSES)[i % n_a]
        assert row["length_km"] == FINITE_LENGTHS[(i // n_a) % len(FINITE_LENGTHS)]
        assert row["launch_power_dbm"] == FINITE_POWERS[i // (n_a * len(FINITE_LENGTHS))]
        for key, value in row.items():
            assert not (isinstance(value, float) and math.isnan(value)), (key, row)
        assert row["block_size"] == (1e9 if row["analysis"] == "finite_lim2014" else None)
        if row["analysis"] != "infinite_decoy" and row["key_rate"] > 0:
            assert 0 < row["mu"] < 1.5 and 0 <= row["qber"] < 0.11 and 0 < row["e1"] < 0.5, row
    # the noise diagnostics are the same for every analysis at a point, and grow with the power
    for p in FINITE_POWERS:
        clicks = {r["noise_clicks_per_gate"] for r in _by(finite_rows, launch_power_dbm=p, length_km=50.0)}
        assert len(clicks) == 1
    assert _by(finite_rows, launch_power_dbm=-math.inf)[0]["noise_clicks_per_gate"] == 0.0


def test_finite_key_rate_is_below_the_asymptotic_one_at_every_point(finite_rows):
    keyed = 0
    for p in FINITE_POWERS:
        for length in FINITE_LENGTHS:
            finite = _rate(finite_rows, "finite_lim2014", p, length)
            asym = _rate(finite_rows, "asymptotic_two_decoy", p, length)
            assert 0.0 <= finite <= asym * (1 + 1e-9), (p, length, finite, asym)
            keyed += finite > 0
    assert keyed >= 6
    # n_X = 1e9 costs a visible fraction, not all of it, near the link without traffic
    assert 0.3 < _rate(finite_rows, "finite_lim2014", -math.inf, 50.0) / _rate(
        finite_rows, "asymptotic_two_decoy", -math.inf, 50.0) < 0.95


def test_noise_that_kills_the_asymptotic_key_kills_the_finite_one(finite_rows):
    for p in FINITE_POWERS:
        for length in FINITE_LENGTHS:
            if _rate(finite_rows, "asymptotic_two_decoy", p, length) == 0.0:
                assert _rate(finite_rows, "finite_lim2014", p, length) == 0.0, (p, length)
        rates = [_rate(finite_rows, "finite_lim2014", p, length) for length in FINITE_LENGTHS]
        assert all(b <= a for a, b in zip(rates, rates[1:])), (p, rates)  # falls with distance
    # -10 dBm kills both at 50 km, where the link without traffic has a key
    assert _rate(finite_rows, "finite_lim2014", -math.inf, 50.0) > 0.0
    assert _rate(finite_rows, "asymptotic_two_decoy", -10.0, 50.0) == 0.0
    # more power, less finite key (up to the optimizer's tolerance)
    for length in FINITE_LENGTHS:
        rates = [_rate(finite_rows, "finite_lim2014", p, length) for p in FINITE_POWERS]
        assert all(b <= a * (1 + 1e-6) for a, b in zip(rates, rates[1:])), (length, rates)
    # with noise the finite key ends at a shorter distance than its asymptotic limit
    assert _rate(finite_rows, "finite_lim2014", -math.inf, 110.0) > 0.0
    assert _rate(finite_rows, "finite_lim2014", -20.0, 110.0) == 0.0
    assert _rate(finite_rows, "asymptotic_two_decoy", -20.0, 110.0) > 0.0


def test_the_figure_has_one_line_style_per_analysis_and_the_block_size(finite_rows):
    from qmc.plots.wdm import key_rate_vs_distance_wdm

    fig = key_rate_vs_distance_wdm(finite_rows)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Finite key (Lim 2014), $n_X = 10^{9}$" in texts and "Infinite decoy states" in texts
    styles = {}
    for line in ax.get_lines():
        styles.setdefault(line.get_linestyle(), set()).add(tuple(line.get_color()))
    assert len(styles) == len(FINITE_ANALYSES)


def test_the_default_experiment_has_finite_key_analyses_beside_the_asymptotic_ones(finite_rows):
    _, spec, _ = cli.prepare(cli.compose("experiment=wdm_coexistence"))
    variants = spec["analysis"]["variants"]
    assert set(variants) == {"infinite_decoy", "asymptotic_two_decoy", "finite_lim2014"}
    assert float(variants["finite_lim2014"].block_size) == 1e9
    # the finite-key analyses alone through the command's path: the rows of the Python API
    small = ["analysis=finite_lim2014", "~analysis.variants.infinite_decoy", "sweep.length_km.values=[0,20,50,90,110]",
             "sweep.launch_power_dbm.values=[-20]", "analysis.f_ec=1.22"]
    _, spec, chunks = cli.prepare(cli.compose("experiment=wdm_coexistence", *small))
    out = _rows(chunks)
    assert {r["analysis"] for r in out} == {"finite_lim2014", "asymptotic_two_decoy"} and len(out) == 10
    for row in out:
        want = _rate(finite_rows, row["analysis"], -20.0, row["length_km"])
        assert row["key_rate"] == pytest.approx(want, rel=1e-6, abs=1e-12), row
