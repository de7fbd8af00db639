"""Study ``turbulence_fading``: the rows are complete and free of NaN; the Monte Carlo mean
transmittance, the fraction of slots below half the mean and the histograms agree with the exact
values within 5 standard errors (beam wander's mean to 1e-3 from the exact aperture transmittance);
Gamma-Gamma's alpha and beta are Fading.shapes(); a fading law of zero variance gives the fixed
link's key rate bit for bit; pooling the counts of all slots (the exact engine's average over the
fading) changes the key rate only slightly and not its cut-off, while slots analysed one by one keep
a key beyond it; the experiment composes, and bad values are refused in one line naming the key."""

from __future__ import annotations

import dataclasses
import math

import jax
import matplotlib
import numpy as np
import pytest

import qmc
from qmc import cli, studies
from qmc.analysis import InfiniteDecoy
from qmc.freespace.channel import FreeSpaceChannel
from qmc.freespace.fading import Fading
from qmc.studies.turbulence import TURBULENCE_COLUMNS, FadingOptions, turbulence_fading

matplotlib.use("Agg")

LOSSES_DB = [30.0, 40.0, 42.0, 43.0, 44.0, 46.0]
RYTOV = [1.0]
MU = np.geomspace(1e-3, 1.0, 40)
PROTO = qmc.DecoyBB84(intensities=(0.5, 0.1, 0.0), probabilities=(1.0, 0.0, 0.0), p_z=0.5, key_basis="both")
ANALYSES = {"infinite_decoy": InfiniteDecoy(f_ec=1.16)}
OPTIONS = FadingOptions(beam_width_m=0.2, aperture_radius_m=0.1, wander_sigma_m=0.1, n_samples=200_000, n_bins=20,
                        slot_nodes=4)
LINK = qmc.Link(qmc.WeakCoherentSource(), FreeSpaceChannel(), qmc.ThresholdDetectors(0.5, 1e-6, 0.01, "threshold"))


def _rows(chunks):
    return [row for chunk in chunks for row in chunk.rows]


@pytest.fixture(scope="module")
def rows():
    return _rows(turbulence_fading(jax.random.key(0), LINK, PROTO, ANALYSES, RYTOV, LOSSES_DB, OPTIONS, MU))


def _kind(rows, kind, **match):
    return [r for r in rows if r["kind"] == kind and all(r[k] == v for k, v in match.items())]


def test_rows_are_complete_and_free_of_nan(rows):
    assert studies.get("turbulence_fading").columns == TURBULENCE_COLUMNS
    for row in rows:
        assert set(row) == set(TURBULENCE_COLUMNS)
        for key, value in row.items():
            assert not (isinstance(value, float) and math.isnan(value)), (key, row)
    fading = _kind(rows, "fading")
    assert [r["law"] for r in fading] == ["lognormal", "gamma_gamma", "beam_wander"]
    for row in fading:
        for key in ("scintillation_index", "scintillation_index_exact", "mean_transmittance",
                    "mean_transmittance_exact", "p_below_half", "p_below_half_exact"):
            assert row[key] is not None, (key, row)
        assert row["n_samples"] >= 200_000
        assert (row["rytov_variance"] is None) == (row["law"] == "beam_wander")
    keyed = _kind(rows, "key_rate")
    assert len(keyed) == len(fading) * len(LOSSES_DB) * len(ANALYSES)
    for row in keyed:
        for key in ("loss_db", "key_rate", "key_rate_fixed", "key_rate_slots"):
            assert row[key] is not None and row[key] >= 0.0, (key, row)
    assert len(_kind(rows, "histogram")) == len(fading) * OPTIONS.n_bins


def test_monte_carlo_agrees_with_the_exact_law(rows):
    for row in _kind(rows, "fading"):
        n = row["n_samples"]
        z = abs(row["mean_transmittance"] - row["mean_transmittance_exact"]) / row["mean_transmittance_stderr"]
        assert z < 5.0, row
        p = row["p_below_half_exact"]
        assert abs(row["p_below_half"] - p) < 5.0 * math.sqrt(p * (1.0 - p) / n), row
        assert row["scintillation_index"] == pytest.approx(row["scintillation_index_exact"], rel=0.1)
    wander = _kind(rows, "fading", law="beam_wander")[0]
    assert wander["mean_transmittance_stderr"] < 1e-3
    assert abs(wander["mean_transmittance"] - wander["mean_transmittance_exact"]) < 1e-3
    assert wander["mean_transmittance_exact"] == pytest.approx(1.0 - math.exp(-2 * 0.1**2 / (0.2**2 + 4 * 0.1**2)))


def test_histograms_agree_with_the_exact_bin_probabilities(rows):
    for row in _kind(rows, "histogram"):
        width = row["bin_hi"] - row["bin_lo"]
        p = row["density_exact"] * width
        se = math.sqrt(p * (1.0 - p) / OPTIONS.n_samples) / width
        assert abs(row["density"] - row["density_exact"]) < 5.0 * se + 1e-12, row


def test_gamma_gamma_shapes_are_those_of_fading(rows):
    for row in _kind(rows, "fading", law="gamma_gamma"):
        alpha, beta = Fading("gamma_gamma", rytov_variance=row["rytov_variance"]).shapes()
        assert (row["alpha"], row["beta"]) == (float(alpha), float(beta))
    for row in _kind(rows, "fading"):
        if row["law"] != "gamma_gamma":
            assert row["alpha"] is None and row["beta"] is None


def test_zero_variance_gives_the_fixed_key_rate_bit_for_bit():
    options = dataclasses.replace(OPTIONS, wander_sigma_m=0.0)  # the same shapes: no new compilation
    rows = _rows(turbulence_fading(jax.random.key(1), LINK, PROTO, ANALYSES, [0.0], LOSSES_DB, options, MU))
    keyed = _kind(rows, "key_rate")
    assert len(keyed) == 3 * len(LOSSES_DB)
    assert any(r["key_rate"] > 0 for r in keyed)
    for row in keyed:
        assert row["key_rate"] == row["key_rate_fixed"], row
        assert row["key_rate_slots"] == pytest.approx(row["key_rate_fixed"], rel=1e-12), row  # sum of w_i R
        assert row["mu"] == row["mu_fixed"], row


def _max_loss(rows, column):
    return max((r["loss_db"] for r in rows if r[column] > 0), default=-math.inf)


def test_pooled_fading_moves_the_key_rate_little_and_slots_reach_further(rows):
    for law in ("lognormal", "gamma_gamma", "beam_wander"):
        keyed = _kind(rows, "key_rate", law=law)
        positive = [r for r in keyed if r["key_rate_fixed"] > 0]
        # The exact engine averages the click probabilities over X: the fading changes the rate
        # through the saturation of the clicks only, about 1e-5 relative near the cut-off.
        assert any(r["key_rate"] != r["key_rate_fixed"] for r in positive)
        for r in positive:
            assert r["key_rate"] == pytest.approx(r["key_rate_fixed"], rel=1e-3)
        assert _max_loss(keyed, "key_rate") == _max_loss(keyed, "key_rate_fixed") == 42.0
        # Slots analysed one by one: the bright slots keep a key beyond the mean-loss cut-off.
        assert _max_loss(keyed, "key_rate_slots") > _max_loss(keyed, "key_rate_fixed")
        for r in keyed:
            assert r["key_rate_slots"] >= r["key_rate_fixed"] * (1.0 - 1e-9)


def test_figure_draws_from_the_rows(rows):
    fig = studies.get("turbulence_fading").draw(rows, title="turbulence_fading")
    assert len(fig.axes) == 6


def test_experiment_composes():
    cfg = cli.compose("experiment=turbulence_fading")
    study, spec, _ = cli.prepare(cfg)
    assert study.name == "turbulence_fading"
    assert isinstance(spec["link"], qmc.Link)  # its source and detector; the study sets the channel
    assert list(spec["sweep"].axis("rytov_variance")) == [0.2, 1.0, 3.0]
    assert spec["fading"]["beam_width_m"] == 0.2 and spec["fading"]["n_samples"] >= 200_000
    assert set(cli.compose("experiment=turbulence_fading")) <= cli.known_keys()
    for system in ("gys2004", "snspd_zadeh2017", "lim2014"):
        cli.prepare(cli.compose("experiment=turbulence_fading", f"system={system}"))


@pytest.mark.parametrize("override, key", [
    ("sweep.rytov_variance.values=[0.5,-1.0]", "sweep.rytov_variance[1] = -1"),
    ("fading.laws=[lognormal,kolmogorov]", "fading.laws = kolmogorov"),
    ("fading.beam_width_m=0", "fading.beam_width_m = 0"),
    ("fading.n_samples=1", "fading.n_samples = 1"),
    ("sweep.loss_db.start=-3", "sweep.loss_db"),
    ("engine=block", "engine = block"),
])
def test_bad_values_are_refused_in_one_line(override, key):
    with pytest.raises((qmc.ValidationError, cli.ConfigError)) as err:
        cli.prepare(cli.compose("experiment=turbulence_fading", override))
    message = str(err.value)
    assert key in message and "\n" not in message, message


def test_a_transmittance_above_one_is_capped_and_the_rate_stays_positive():
    """Gamma-Gamma is unbounded: at 10 dB some quadrature nodes have T_mean X > 1; the channel caps
    them at 1, and the faded rate stays within a few percent of the fixed one (no negative tables)."""
    options = dataclasses.replace(OPTIONS, laws=("gamma_gamma",))
    losses = [10.0] + LOSSES_DB[1:]  # the same shapes as the fixture's: no new compilation
    rows = _rows(turbulence_fading(jax.random.key(2), LINK, PROTO, ANALYSES, RYTOV, losses, options, MU))
    low = min(_kind(rows, "key_rate"), key=lambda r: r["loss_db"])
    assert low["max_slot_transmittance"] > 1.0
    assert low["key_rate"] == pytest.approx(low["key_rate_fixed"], rel=0.05) and low["key_rate"] > 0.0