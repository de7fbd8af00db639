"""Reproduction of the published GYS numbers of Lo, Ma, Chen (2005) and Ma, Qi, Zhao, Lo (2005).

Setting (``reference.gys_link``, ``reference.gys_protocol``): detectors of Gobby, Yuan, Shields,
APL 84, 3762 (2004) (eta_Bob = 4.5 %, Y0 = 1.7e-6, e_d = 3.3 %) in Ma's linear detector model,
fiber at 0.21 dB/km, f_EC = 1.22 for every analysis; protocol (mu, 0.05, 0) with probabilities
(1, 0, 0), p_z = 1/2 and key from both bases (Lo-Ma-Chen's rate per signal pulse, q = 1/2), a
single intensity mu for the no-decoy protocol. The signal intensity mu is optimized at every
length on a dense geometric grid (``qmc.sweep.maximize_on_grid``); lengths every 0.5 km.

The published values and their tolerances are read from the reproduction gallery,
``experiments/lo_ma_chen_2005/published.csv`` (README.md there says where each comes from):
maximum distances (key rate > 0) of about 142 km (infinite decoys), 140 km (vacuum + weak,
nu = 0.05) and 40 km (no decoy, GLLP), within +-2 km (read to about a km; ours on a 0.5 km grid);
optimal mu with infinite decoys about 0.48, within its rounding (0.005) plus one step of the mu grid.
qmc finds 142, 141 and 40 km (and 171 km for an ideal single-photon source).

The last test checks the gallery itself: every folder's published.csv has the schema of
``qmc.gallery``, and the SNSPD detector config uses the detector paper's numbers.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from omegaconf import OmegaConf

import qmc
from qmc._paths import conf_dir, gallery_dir
from qmc.gallery import COLUMNS, PUBLISHED as PUBLISHED_CSV, published_points
from qmc.analysis.keyrate import score
from qmc.sweep import evaluate, grid, maximize_on_grid

import reference as ref

LENGTHS_KM = np.arange(0.0, 200.5, 0.5)
MU_GRID = jnp.geomspace(1e-4, 2.0, 600)  # ratio 1.0167 between neighbours
MU_STEP = float(MU_GRID[1] / MU_GRID[0]) - 1.0


def _published(name: str) -> dict:
    """{(quantity, series): row} of ``experiments/<name>/published.csv``; raises when it is missing
    (so that the tests below cannot pass without their references)."""
    rows = published_points(name)
    if not rows:
        raise FileNotFoundError(f"experiments/{name}/published.csv is missing or empty")
    return {(row["quantity"], row["series"]): row for row in rows}


PUBLISHED = _published("lo_ma_chen_2005")
PUBLISHED_MAX_DISTANCE = {series: row for (quantity, series), row in PUBLISHED.items()
                          if quantity == "max_distance_km"}

ANALYSES = ("infinite_decoy", "vacuum_weak", "no_decoy", "single_photon")


def _optimized_sweep(click_model: str):
    """Every analysis, mu optimized at each length; one jit(vmap) per click model."""
    analyses = {name: qmc.ANALYSES[name](f_ec=ref.GYS_F_EC) for name in ANALYSES}

    def best_rates(tree):
        out = {}
        for name, analysis in analyses.items():
            protocol = tree["no_decoy"] if name == "no_decoy" else tree["protocol"]
            rate = lambda t, a=analysis: a.key_rate(t["link"], t["protocol"])  # noqa: E731
            out[name] = maximize_on_grid(rate, {"link": tree["link"], "protocol": protocol},
                                         "protocol.intensities.0", MU_GRID)
        return out

    tree = {"link": ref.gys_link(0.0, click_model), "protocol": ref.gys_protocol(),
            "no_decoy": ref.gys_no_decoy_protocol()}
    return evaluate(best_rates, tree, grid({"link.channel.length_km": LENGTHS_KM}), chunk_size=101)


def _max_distance(lengths_km, rate):
    positive = rate > 0
    assert positive[0], "no key at 0 km"
    last = int(np.nonzero(positive)[0].max())
    assert positive[: last + 1].all(), "the key rate vanishes and comes back"
    assert last < len(lengths_km) - 1, "still positive at the end of the sweep"
    return float(lengths_km[last])


@pytest.fixture(scope="module")
def sweeps():
    """{(analysis, click model): (lengths, KeyRate at the optimal mu, optimal mu)}."""
    out = {}
    for click_model in ("ma2005", "threshold"):
        for name, (result, mu) in _optimized_sweep(click_model).items():
            out[name, click_model] = (LENGTHS_KM, result, mu)
    return out


def test_published_references_are_the_expected_ones():
    """The gallery holds the three maximum distances and the optimal mu, each with a tolerance."""
    assert sorted(PUBLISHED_MAX_DISTANCE) == ["infinite_decoy", "no_decoy", "vacuum_weak"]
    assert ("mu_opt", "infinite_decoy") in PUBLISHED
    assert all(row["value"] is not None and row["tolerance"] is not None for row in PUBLISHED.values())


@pytest.mark.parametrize("name", sorted(PUBLISHED_MAX_DISTANCE))
def test_maximum_distance_matches_publication(sweeps, name):
    lengths, result, _ = sweeps[name, "ma2005"]
    distance = _max_distance(lengths, result.rate)
    published, tolerance = PUBLISHED_MAX_DISTANCE[name]["value"], PUBLISHED_MAX_DISTANCE[name]["tolerance"]
    assert abs(distance - published) <= tolerance, f"{name}: {distance} km, published ~{published} +- {tolerance} km"


def test_measured_maximum_distances(sweeps):
    """qmc's own numbers (README table), at 0.5 km resolution: 142, 141, 40 and 171 km."""
    measured = {name: _max_distance(lengths, result.rate) for (name, model), (lengths, result, _) in sweeps.items()
                if model == "ma2005"}
    assert measured == {"infinite_decoy": 142.0, "vacuum_weak": 141.0, "no_decoy": 40.0, "single_photon": 171.0}


def test_physical_model_gives_the_same_distances(sweeps):
    """Double clicks and the Y0 eta cross term change the maximum distance by less than 1 km."""
    for name in PUBLISHED_MAX_DISTANCE:
        linear = _max_distance(sweeps[name, "ma2005"][0], sweeps[name, "ma2005"][1].rate)
        physical = _max_distance(sweeps[name, "threshold"][0], sweeps[name, "threshold"][1].rate)
        assert abs(linear - physical) <= 1.0, (name, linear, physical)


def test_optimal_signal_intensity_with_infinite_decoys(sweeps):
    """mu_opt ~ O(1) (Lo, Ma, Chen 2005), about 0.48 for GYS (Ma et al. 2005); within the
    published tolerance (the rounding of the published value, 0.005) plus one step of the mu grid."""
    lengths, _, mu = sweeps["infinite_decoy", "ma2005"]
    at_50 = float(mu[np.searchsorted(lengths, 50.0)])
    published, tolerance = PUBLISHED["mu_opt", "infinite_decoy"]["value"], PUBLISHED["mu_opt", "infinite_decoy"]["tolerance"]
    assert abs(at_50 - published) <= tolerance + published * MU_STEP, (at_50, published)
    # nearly independent of distance until dark counts matter
    middle = mu[(lengths >= 10.0) & (lengths <= 120.0)]
    assert np.all((middle > 0.4) & (middle < 0.55))


def test_ordering_of_the_analyses(sweeps):
    """Single photons >= infinite decoys >= vacuum + weak >= no decoy, at every length."""
    rate = {name: result.rate for (name, model), (_, result, _) in sweeps.items() if model == "ma2005"}
    assert np.all(rate["infinite_decoy"] >= rate["vacuum_weak"])
    assert np.all(rate["vacuum_weak"] >= rate["no_decoy"])
    assert np.all(rate["single_photon"] >= rate["infinite_decoy"])


# ----------------------------------------------------------------------------------------------
# The reproduction gallery (experiments/): schema, configs, and the SNSPD detector's numbers
# ----------------------------------------------------------------------------------------------

GALLERY = ("lim2014", "lo_ma_chen_2005", "rusca2018", "snspd_zadeh2017")


def test_gallery_folders_have_readme_figure_and_published_points():
    root = gallery_dir()
    assert root is not None
    assert set(GALLERY) <= {p.name for p in root.iterdir() if p.is_dir()}
    for name in GALLERY:
        for file in ("README.md", PUBLISHED_CSV, "figure.png"):
            assert (root / name / file).is_file(), (name, file)
        rows = published_points(name)
        assert rows, name
        for row in rows:
            assert set(COLUMNS) <= set(row), (name, row)
            assert row["quantity"] and row["series"] and row["source"] and row["value"] is not None, (name, row)
            assert row["location"].split(" ")[0] in ("text", "table", "figure"), (name, row)
            if row["quantity"] == "max_distance_km":
                assert row["x"] is None and row["tolerance"] is not None and row["tolerance"] >= 0, (name, row)
            if row["quantity"] == "key_rate":
                assert row["x"] is not None, (name, row)


def test_experiment_configs_name_existing_gallery_folders():
    named = {}
    for path in sorted((conf_dir() / "experiment").glob("*.yaml")):
        published = OmegaConf.load(path).get("published")
        if published is not None:
            named[path.stem] = published
            assert published_points(published), (path.name, published)
    expected = {"decoy_bb84_gys": "lo_ma_chen_2005", "decoy_bb84_snspd": "snspd_zadeh2017", "finite_lim2014": "lim2014"}
    assert expected.items() <= named.items(), named


def test_snspd_detector_config_uses_the_published_detector_numbers():
    """conf/detector/snspd.yaml: the paper's efficiency, and its dark-count rate in the assumed
    100 ps window (p_dark = 1 - exp(-rate * window), rounded to two digits in the config)."""
    published = _published("snspd_zadeh2017")
    efficiency = published["detection_efficiency", "detector"]
    rate = published["dark_count_rate_hz", "detector"]
    detector = OmegaConf.load(conf_dir() / "detector" / "snspd.yaml")
    assert abs(detector.efficiency - efficiency["value"]) <= efficiency["tolerance"]
    window_s = 100e-12  # an assumption of qmc's config, not a number of the paper
    p_dark = qmc.ThresholdDetectors.from_datasheet(efficiency["value"], rate["value"], window_s).p_dark
    assert math.isclose(detector.p_dark, p_dark, rel_tol=0.01), (detector.p_dark, p_dark)


def test_coarse_to_fine_grid_search_finds_the_exhaustive_optimum_next_to_the_edges():
    # Next to the largest distances the intensities with a key form a window narrower than the
    # coarse grid's spacing; the score's grading (raw rate per detection) must lead the coarse
    # stage to it. The same optimum as the exhaustive search, to the bit, on both sides of each edge.
    lengths = np.array([0.0, 40.1, 40.15, 40.2, 40.25, 100.0, 140.75, 140.9, 141.0, 141.05, 142.1, 142.2, 142.25])
    tree = {"link": ref.gys_link(0.0, "ma2005"), "protocol": ref.gys_protocol(), "no_decoy": ref.gys_no_decoy_protocol()}
    analyses = {name: qmc.ANALYSES[name](f_ec=ref.GYS_F_EC) for name in ANALYSES}

    def best(exhaustive):
        def point(t):
            out = {}
            for name, analysis in analyses.items():
                protocol = t["no_decoy"] if name == "no_decoy" else t["protocol"]
                out[name] = maximize_on_grid(lambda s, a=analysis: a.key_rate(s["link"], s["protocol"]),
                                             {"link": t["link"], "protocol": protocol}, "protocol.intensities.0",
                                             MU_GRID, score=score, exhaustive=exhaustive)
            return out
        return evaluate(point, tree, grid({"link.channel.length_km": lengths}))

    fast, full = best(False), best(True)
    for name in analyses:
        np.testing.assert_array_equal(np.asarray(fast[name][0].rate), np.asarray(full[name][0].rate), err_msg=name)
        np.testing.assert_array_equal(np.asarray(fast[name][1]), np.asarray(full[name][1]), err_msg=name)
    assert float(full["vacuum_weak"][0].rate[8]) > 0.0  # 141.0 km: a key in a window of 4 grid values
