"""Studies ``bbm92_distance`` and ``chsh_vs_pair_number`` (qmc.studies.bbm92, qmc.studies.chsh).

Rows complete and without NaN; with GYS arms the source in the middle reaches farther than at
Alice (286.5 against 170.9 km with f = 1.22); the key rate stays below PLOB; S from sampled counts
within 5 standard errors of the model's S, and S falling with the mean pair number at large mu;
both experiments compose through qmc.cli with the pair source (`source=spdc`); bad values are
refused in one line naming the key."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

import qmc
from qmc import cli, studies
from qmc.analysis import BBM92Finite
from qmc.entanglement import PairSource, TwoArmLink
from qmc.studies.bbm92 import BBM92_COLUMNS, EntanglementOptions, bbm92_distance
from qmc.studies.chsh import CHSH_COLUMNS, ChshOptions, chsh_vs_pair_number

matplotlib.use("Agg")

LENGTHS = [0.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0]
MUS = [0.003, 0.03, 0.1, 0.3, 1.0]


def _rows(chunks):
    return [row for chunk in chunks for row in chunk.rows]


def _no_nan(rows, columns):
    for row in rows:
        assert set(row) == set(columns)
        for key, value in row.items():
            assert not (isinstance(value, float) and math.isnan(value)), (key, row)


@pytest.fixture(scope="module")
def bbm92_rows():
    return _rows(bbm92_distance(TwoArmLink.gys2004(), LENGTHS, f_ec=1.22))


@pytest.fixture(scope="module")
def chsh_rows():
    import jax

    link = TwoArmLink.gys2004(source=PairSource())
    return _rows(chsh_vs_pair_number(jax.random.key(0), link, [10.0, 60.0], MUS, ChshOptions(pulses_per_setting=1e10)))


def test_bbm92_rows_are_complete(bbm92_rows):
    assert studies.get("bbm92_distance").columns == BBM92_COLUMNS
    assert len(bbm92_rows) == 3 * len(LENGTHS)
    _no_nan(bbm92_rows, BBM92_COLUMNS)
    assert {(r["analysis"], r["source_position"]) for r in bbm92_rows} == {
        ("bbm92", "middle"), ("bbm92", "alice"), ("plob", None)}
    for r in bbm92_rows:
        if r["analysis"] == "bbm92" and r["key_rate"] > 0:
            assert 0 < r["mean_pair_number"] < 1 and 0 < r["gain"] < 1 and 0 < r["qber"] < 0.11


def test_the_source_in_the_middle_reaches_farther_than_at_alice(bbm92_rows):
    reach = {r["source_position"]: r["max_distance_km"] for r in bbm92_rows if r["analysis"] == "bbm92"}
    assert reach["middle"] > reach["alice"] + 100.0
    assert reach["middle"] == pytest.approx(286.5, abs=0.3)  # docs/entanglement.md (f = 1.22)
    assert reach["alice"] == pytest.approx(170.9, abs=0.3)
    at = {(r["source_position"], r["length_km"]): r["key_rate"] for r in bbm92_rows}
    assert at[("middle", 250.0)] > 0 and at[("alice", 250.0)] == 0
    assert at[("middle", 0.0)] == pytest.approx(at[("alice", 0.0)], rel=1e-9)


def test_the_key_rate_is_below_plob_everywhere(bbm92_rows):
    plob = {r["length_km"]: r["key_rate"] for r in bbm92_rows if r["analysis"] == "plob"}
    for r in bbm92_rows:
        if r["analysis"] == "bbm92":
            assert r["key_rate"] < plob[r["length_km"]]


def test_chsh_rows_are_complete_and_s_matches_the_model(chsh_rows):
    assert studies.get("chsh_vs_pair_number").columns == CHSH_COLUMNS
    assert len(chsh_rows) == 2 * len(MUS)
    _no_nan(chsh_rows, CHSH_COLUMNS)
    for r in chsh_rows:
        assert r["coincidences"] > 1000
        assert abs(r["chsh_s"] - r["chsh_s_model"]) < 5 * r["chsh_s_stderr"], r
        assert r["chsh_s_expected"] == pytest.approx(2 * math.sqrt(2) * r["visibility"])
        assert abs(r["chsh_s_model"] - r["chsh_s_expected"]) < 1e-6


def test_s_falls_with_the_mean_pair_number_at_large_mu(chsh_rows):
    for length in (10.0, 60.0):
        sub = sorted((r for r in chsh_rows if r["length_km"] == length), key=lambda r: r["mean_pair_number"])
        large = [r for r in sub if r["mean_pair_number"] >= 0.03]
        model = [r["chsh_s_model"] for r in large]
        counted = [r["chsh_s"] for r in large]
        assert all(np.diff(model) < 0) and all(np.diff(counted) < 0)
        assert model[0] > 2.0 > model[-1]  # the violation is lost at mu = 1


def test_the_figures_draw(bbm92_rows, chsh_rows):
    fig = studies.get("bbm92_distance").draw(bbm92_rows, title="t")
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("middle" in t and "286.5 km" in t for t in texts) and any("PLOB" in t for t in texts)
    published = [{"quantity": "chsh_s", "series": "x", "x": None, "value": 2.37, "tolerance": 0.09}]
    fig = studies.get("chsh_vs_pair_number").draw(chsh_rows, published=published)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "classical limit 2" in texts and any("published" in t for t in texts)


def test_the_experiments_compose_with_the_pair_source():
    study, spec, chunks = cli.prepare(cli.compose("experiment=bbm92_distance",
                                                  "sweep.length_km.values=[0,50,100,150,200,250,300]",
                                                  "bbm92.positions=[middle]"))
    assert study.name == "bbm92_distance" and isinstance(spec["source"], PairSource)
    assert spec["analysis"]["f_ec"] == 1.22 and spec["detector"].efficiency == 0.045
    rows = _rows(chunks)
    assert [r["source_position"] for r in rows] == ["middle"] * 7 + [None] * 7
    study, spec, chunks = cli.prepare(cli.compose(
        "experiment=chsh_vs_pair_number", "sweep.length_km.values=[20]", "sweep.mean_pair_number.values=[0.05]",
        "source.position_km=5", "chsh.pulses_per_setting=1e9"))
    assert spec["source"].position_km == 5.0
    rows = _rows(chunks)
    assert len(rows) == 1 and rows[0]["pulses_per_setting"] == 10 ** 9 and rows[0]["chsh_s"] > 2.0


@pytest.mark.parametrize("experiment, override, message", [
    ("bbm92_distance", "source.mean_pair_number=-0.1", "source.mean_pair_number = -0.1 is out of range"),
    ("bbm92_distance", "source.position=bob", "source.position"),
    ("chsh_vs_pair_number", "source.position=top", "source.position"),
    ("bbm92_distance", "bbm92.positions=[middle,bob]", "bbm92.positions = bob: unknown position"),
    ("bbm92_distance", "bbm92.click_model=linear", "bbm92.click_model"),
    ("bbm92_distance", "source=wcp", "source: the entanglement studies need a pair source"),
    ("chsh_vs_pair_number", "sweep.mean_pair_number.values=[0.1,-1]", "sweep.mean_pair_number[1] = -1 is out of range"),
    ("chsh_vs_pair_number", "chsh.pulses_per_setting=0.5", "chsh.pulses_per_setting"),
    ("chsh_vs_pair_number", "+chsh.shots=5", "chsh.shots: unknown key"),
])
def test_bad_values_get_one_line_errors(experiment, override, message):
    with pytest.raises((qmc.ValidationError, cli.ConfigError)) as err:
        cli.prepare(cli.compose(f"experiment={experiment}", override))
    text = str(err.value)
    assert message in text and "\n" not in text


def test_the_options_refuse_unknown_positions_directly():
    with pytest.raises(qmc.ValidationError, match="bbm92.positions = far"):
        bbm92_distance(TwoArmLink.gys2004(), [0.0], options=EntanglementOptions(positions=("far",)))


@pytest.fixture(scope="module")
def finite_rows():
    finite = {"finite_N1e10": BBM92Finite(f_ec=1.22, n_pulses=1e10), "finite_N1e12": BBM92Finite(f_ec=1.22, n_pulses=1e12)}
    return _rows(bbm92_distance(TwoArmLink.gys2004(), [0.0, 50.0, 100.0, 150.0], f_ec=1.22,
                                options=EntanglementOptions(positions=("middle",)), finite=finite))


def test_finite_variants_add_their_rows_and_keep_the_asymptotic_ones(finite_rows):
    _no_nan(finite_rows, BBM92_COLUMNS)
    labels = [r["analysis"] for r in finite_rows]
    assert labels == ["bbm92"] * 4 + ["finite_N1e10"] * 4 + ["finite_N1e12"] * 4 + ["plob"] * 4
    asymptotic = _rows(bbm92_distance(TwoArmLink.gys2004(), [0.0, 50.0, 100.0, 150.0], f_ec=1.22,
                                      options=EntanglementOptions(positions=("middle",))))
    assert [r for r in finite_rows if r["analysis"] in ("bbm92", "plob")] == asymptotic
    reach = {r["analysis"]: r["max_distance_km"] for r in finite_rows if r["analysis"] != "plob"}
    assert all(type(v) is float for v in reach.values())  # plain floats: numpy scalars print as np.float64(...)
    # a larger block estimates the phase error better: it reaches farther, both below the asymptotic reach
    assert reach["finite_N1e10"] < reach["finite_N1e12"] < reach["bbm92"]
    rate = {(r["analysis"], r["length_km"]): r["key_rate"] for r in finite_rows}
    assert 0 < rate[("finite_N1e10", 50.0)] < rate[("finite_N1e12", 50.0)]
    assert rate[("finite_N1e10", 100.0)] == 0.0 and rate[("finite_N1e12", 100.0)] > 0


def test_the_finite_experiment_composes_and_refuses_other_variants():
    study, spec, _ = cli.prepare(cli.compose("experiment=bbm92_finite", "sweep.length_km.values=[0,50]"))
    assert study.name == "bbm92_distance"
    assert {k: float(v.n_pulses) for k, v in spec["analysis"]["variants"].items()} == {
        "finite_N1e10": 1e10, "finite_N1e12": 1e12}
    assert all(float(v.f_ec) == 1.22 for v in spec["analysis"]["variants"].values())
    with pytest.raises(qmc.ValidationError) as err:
        cli.prepare(cli.compose("experiment=bbm92_distance", "analysis=finite_lim2014"))
    assert "analysis.variants.finite_lim2014: bbm92_distance takes only qmc.analysis.BBM92Finite" in str(err.value)
    with pytest.raises(qmc.ValidationError, match=r"analysis.eps_sec = 2 is out of range: must be in \(0, 1\)"):
        cli.prepare(cli.compose("experiment=bbm92_finite", "analysis.eps_sec=2"))


def test_the_figure_draws_the_finite_rows(finite_rows):
    fig = studies.get("bbm92_distance").draw(finite_rows, title="t")
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("finite_N1e12, middle (max") for t in texts) and any("PLOB" in t for t in texts)
