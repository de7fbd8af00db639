"""Finite-key studies of the `qmc` command (issue #6, items 2 and 3): finite_lim2014,
one_vs_two_decoy and finite_key_mc: configs, short runs, the Monte Carlo samplers' laws, and
Monte Carlo sessions against the expected-count key length.

The published numbers themselves (Lim's rate ratio and maximum distance, Rusca's one-decoy
advantage) are checked in tests/test_finite.py; the README lists them.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import jax.random as jr
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

import qmc
from qmc import cli, presets, studies
from qmc.analysis.sessions import session_outcomes
from qmc.engines.block import sample_until_full
from qmc.engines.lim2014 import system_model
from qmc.random import poisson
from qmc.studies import finite_key, finite_key_mc
from qmc.studies.settings import FiniteSettings
from qmc.analysis import FiniteLim2014
from qmc.results import read_metadata, read_results

REPO = Path(__file__).resolve().parents[1]
Z = 5.0  # two-sided false alarm ~ 6e-7 per check (STYLE.md, section 5)
SESSIONS = 400  # sessions per Monte Carlo batch: one compiled sampler and analysis for every test
DRAWS = 40_000  # draws per sampler law test: one compiled Poisson / negative binomial sampler

# Tiny settings of the derivative-free search (optimize.method=search): one compiled search per
# analysis class, a few rounds.
TINY_OPT = ["optimize.n_candidates=256", "optimize.n_rounds=3", "optimize.n_parents=4"]
# The studies' default, the gradient optimizer, on grids of the shapes of tests/test_finite.py
# (48 points in chains of 16), so that a session running both files compiles each program once.
LIM_GRID = ["sweep.length_km.start=0", "sweep.length_km.stop=300", "sweep.length_km.step=20",
            "sweep.block_size.values=[1e4,1e7,1e9]"]
RATIO_GRID = ["sweep.length_km.values=[50,100,150]", "sweep.block_size.start=1e4", "sweep.block_size.stop=1e12",
              "sweep.block_size.num=16"]


def config(*overrides: str):
    return cli.compose(*overrides)


def prepare(*overrides: str):
    cfg = config(*overrides)
    study, spec, chunks = cli.prepare(cfg)
    return cfg, study, spec, chunks


# ----------------------------------------------------------------------------------------------
# Configs: composition and validation (nothing compiles)
# ----------------------------------------------------------------------------------------------


def test_finite_lim2014_config_is_lims_system_and_fig1_grid():
    cfg, study, spec, chunks = prepare("experiment=finite_lim2014")
    assert study.name == "finite_lim2014" and hasattr(chunks, "__next__")
    det = spec["detector"]
    assert (float(det.efficiency), float(det.p_dark), float(det.misalignment)) == (0.1, 6e-7, 5e-3)
    assert float(spec["channel"].loss_db_per_km) == 0.2
    variants = spec["analysis"]["variants"]
    assert set(variants) == {"finite_lim2014", "asymptotic_two_decoy"}
    lim = variants["finite_lim2014"]
    assert isinstance(lim, FiniteLim2014)
    assert (lim.f_ec, lim.eps_cor, lim.kappa) == (1.16, 1e-15, 1e-15)
    assert float(np.asarray(spec["protocol"].intensities)[2]) == 2e-4  # Lim's fixed mu3
    assert spec["finite"] == FiniteSettings(model="lim2014", p_afterpulse=0.04, max_distance=True,
                                            max_distance_tol_km=0.5)
    assert spec["optimize"].method == "gradient"  # qmc.optimize; `search` is the fallback
    lengths = spec["sweep"].axis("length_km")
    np.testing.assert_array_equal(lengths, np.arange(0.0, 201.0, 5.0))
    blocks = spec["sweep"].axis("block_size")
    np.testing.assert_array_equal(blocks, 10.0 ** np.arange(4, 10))


def test_one_vs_two_and_mc_configs():
    _, study, spec, _ = prepare("experiment=one_vs_two_decoy")
    assert study.name == "one_vs_two_decoy"
    assert {type(a).__name__ for a in spec["analysis"]["variants"].values()} == {"FiniteLim2014", "FiniteRusca2018"}
    assert spec["finite"].p_afterpulse == (0.0, 0.04) and spec["finite"].model == "exact"
    _, study, spec, _ = prepare("experiment=finite_key_mc")
    assert study.name == "finite_key_mc"
    assert spec["mc"].rules == ("until_full", "fixed_pulses") and spec["finite"].model == "exact"
    # The analysis configs and the system preset also serve other experiments.
    _, _, spec, _ = prepare("experiment=finite_lim2014", "analysis=finite_rusca2018")
    assert set(spec["analysis"]["variants"]) == {"finite_rusca2018", "asymptotic_one_decoy"}
    _, _, spec, _ = prepare("system=lim2014")
    assert float(spec["detector"].p_dark) == 6e-7 and spec["study"] == "key_rate_vs_distance"


BAD = [
    (["experiment=finite_lim2014", "finite.model=nonsense"], "finite.model = nonsense: must be one of exact"),
    (["experiment=finite_lim2014", "finite.model=exact"], "finite.p_afterpulse = 0.04: only Lim et al.'s closed-form model"),
    (["experiment=finite_lim2014", "sweep.block_size.values=[1e4,0]"], "sweep.block_size[1] = 0 is out of range"),
    (["experiment=finite_lim2014", "sweep.length_km.start=-5"], "sweep.length_km[0] = -5 is out of range"),
    (["experiment=finite_lim2014", "optimize.n_candidates=0"], "optimize.n_candidates = 0 is out of range"),
    (["experiment=finite_lim2014", "optimize.method=newton"], "optimize.method = newton: must be one of gradient"),
    (["experiment=one_vs_two_decoy", "optimize.n_starts=0"], "optimize.n_starts = 0 is out of range"),
    (["experiment=finite_lim2014", "optimize.continuation=-1"], "optimize.continuation = -1 is out of range"),
    (["experiment=finite_lim2014", "analysis.eps_cor=2"], "analysis.eps_cor = 2 is out of range"),
    (["experiment=finite_lim2014", "protocol.intensities=[0.5,0.1,0.08]"], "protocol.intensities[2] = 0.08"),
    (["experiment=one_vs_two_decoy", "analysis=finite_lim2014"], "analysis.variants: study one_vs_two_decoy needs"),
    (["experiment=one_vs_two_decoy", "finite.p_afterpulse=[0,1.5]"], "finite.p_afterpulse[1] = 1.5 is out of"),
    (["experiment=finite_key_mc", "mc.rules=[sometimes]"], "mc.rules = [sometimes]: must be a non-empty list of"),
    (["experiment=finite_key_mc", "finite.model=lim2014"], "mc.rules: fixed_pulses sessions come from the block"),
    (["experiment=finite_key_mc", "sweep.block_size.values=[1e4,12345.6]"], "sweep.block_size: must be whole numbers"),
    (["experiment=finite_key_mc", "engine=pulse"], "engine = pulse: study finite_key_mc uses expected"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[b[0][-1] for b in BAD])
def test_bad_settings_are_one_line_before_compiling(overrides, message):
    with pytest.raises(qmc.ValidationError) as info:
        prepare(*overrides)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------------------------
# Short runs: the command (subprocess) and the studies through studies.execute
# ----------------------------------------------------------------------------------------------


def test_cli_runs_a_short_finite_lim2014_study(tmp_path):
    # The command end to end (files, figure, qmc-plot), on the fast fallback optimizer; the
    # default gradient path runs in-process below.
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "qmc.cli", "experiment=finite_lim2014", "sweep.length_km.values=[0,100]",
         "sweep.block_size.values=[1e4,1e7]", "finite.max_distance_tol_km=5", "optimize.method=search", *TINY_OPT,
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = read_results(run_dir)
    assert len(rows) == 2 * 3 and set(rows[0]) == set(finite_key.FINITE_COLUMNS)
    meta = read_metadata(run_dir)
    assert meta["status"] == "complete" and meta["study"] == "finite_lim2014" and meta["chunks_total"] == 2
    assert (run_dir / "finite_key_vs_distance.png").stat().st_size > 1000
    assert (run_dir / "finite_key_vs_distance.pdf").exists()
    by = {(r["analysis"], r["block_size"], r["length_km"]): r for r in rows}
    for length in (0.0, 100.0):
        r4, r7 = by["finite_lim2014", 1e4, length], by["finite_lim2014", 1e7, length]
        asym = by["asymptotic_two_decoy", math.inf, length]
        # Finite-key rates rise toward the asymptotic rate with the block size.
        assert 0 < r4["key_rate"] < r7["key_rate"] < asym["key_rate"]
        assert all(r["reason"] == "ok" and r["model"] == "lim2014" and r["p_afterpulse"] == 0.04
                   for r in (r4, r7, asym))
        assert r7["mu3"] == 2e-4 and 0 < r7["p_z"] < 1
        assert r7["key_rate_bps"] == pytest.approx(r7["key_rate"] * 1e9)
    # Maximum distances: longer with larger blocks (Lim: 135 km at n_X = 1e4; tol 5 km here).
    d4, d7, da = (by[k]["max_distance_km"] for k in
                  (("finite_lim2014", 1e4, 0.0), ("finite_lim2014", 1e7, 0.0), ("asymptotic_two_decoy", math.inf, 0.0)))
    assert 90 < d4 < d7 < da < 200  # a coarse search (256 candidates, 3 rounds) stops short
    # qmc-plot redraws the figure from results.csv alone.
    (run_dir / "finite_key_vs_distance.png").unlink()
    cli.plot_main([str(run_dir)])
    assert (run_dir / "finite_key_vs_distance.png").exists()


def test_finite_lim2014_study_on_the_gradient_optimizer(tmp_path):
    # The configured default: qmc.optimize along every curve, maximum distances refined to 0.5 km.
    _, study, spec, chunks = prepare("experiment=finite_lim2014", *LIM_GRID)
    meta = studies.execute(study, chunks, tmp_path, progress=False)
    assert meta["status"] == "complete" and meta["rows"] == 16 * 4 and meta["chunks_total"] == 16
    rows = read_results(tmp_path)
    by = {(r["analysis"], r["block_size"], r["length_km"]): r for r in rows}
    # Lim, Sec. IV: "about 1.75" (qmc 1.791) and 135 km at n_X = 1e4 (qmc 130.1 km)
    assert by["finite_lim2014", 1e9, 100.0]["key_rate"] / by["finite_lim2014", 1e7, 100.0]["key_rate"] == (
        pytest.approx(1.791, rel=2e-3))
    curves = (("finite_lim2014", 1e4), ("finite_lim2014", 1e7), ("finite_lim2014", 1e9),
              ("asymptotic_two_decoy", math.inf))
    d = {key: by[key + (0.0,)]["max_distance_km"] for key in curves}
    assert d[curves[0]] == pytest.approx(130.1, abs=0.6)  # to 0.5 km: the study's tolerance
    assert d[curves[0]] < d[curves[1]] < d[curves[2]] < d[curves[3]]
    for key, r in by.items():  # one maximum distance per curve, on all its rows
        assert r["max_distance_km"] == d[key[:2]]
        assert (r["key_rate"] > 0) == (r["length_km"] <= r["max_distance_km"]), key
    assert all(r["mu3"] == 2e-4 for r in rows) and {r["model"] for r in rows} == {"lim2014"}
    assert (tmp_path / "finite_key_vs_distance.png").stat().st_size > 1000


def test_one_vs_two_decoy_study_with_and_without_afterpulsing(tmp_path):
    # Lim's closed-form model for both curves (one compiled program per analysis: p_ap is traced);
    # the gradient optimizer, each length a chain along the 16 block sizes.
    _, study, _, chunks = prepare("experiment=one_vs_two_decoy", *RATIO_GRID, "finite.model=lim2014")
    meta = studies.execute(study, chunks, tmp_path, progress=False)
    assert meta["status"] == "complete" and meta["rows"] == 2 * 3 * 16 and meta["chunks_total"] == 2 * 3
    rows = read_results(tmp_path)
    ratio = {(r["p_afterpulse"], r["length_km"], r["block_size"]): r["ratio"] for r in rows}
    blocks = sorted({r["block_size"] for r in rows})
    assert len(blocks) == 16 and blocks[0] == pytest.approx(1e4) and blocks[-1] == pytest.approx(1e12)
    for length in (50.0, 100.0):
        none = np.array([ratio[0.0, length, n] for n in blocks])
        after = np.array([ratio[0.04, length, n] for n in blocks])
        # Without afterpulsing one decoy wins at every block size (Rusca 2018; qmc 1.01-1.29) ...
        assert np.all(none > 1.0) and none.max() > 1.2
        # ... with Lim's afterpulsing model (errors p_ap D_k / 2) two decoys win (qmc 0.24-0.94).
        assert np.all(after < 1.0) and after.max() > 0.85
    assert all(r["model"] == "lim2014" for r in rows)
    assert (tmp_path / "one_vs_two_decoy.png").stat().st_size > 1000


# ----------------------------------------------------------------------------------------------
# Monte Carlo samplers: their laws (fixed keys, tolerances from the standard errors, z = 5)
# ----------------------------------------------------------------------------------------------


def _chi_square_p(samples, cdf, lo, hi):
    """p-value of a chi-square test of integer ``samples`` against ``cdf`` on bins over [lo, hi]."""
    edges = np.unique(np.linspace(lo, hi + 1, min(50, hi - lo + 2)).astype(np.int64))
    observed = np.histogram(samples, bins=np.concatenate([[-(2**62)], edges, [2**62]]))[0]
    probs = np.diff(np.concatenate([[0.0], cdf(edges - 1), [1.0]]))
    keep = probs * len(samples) > 5
    observed, expected = observed[keep], probs[keep] * len(samples)
    expected *= observed.sum() / expected.sum()
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    return stats.chi2.sf(chi2, keep.sum() - 1)


@pytest.mark.parametrize("lam", [3.0, 30.0, 1e4])
def test_poisson_sampler_follows_poisson_law(lam):
    x = np.asarray(poisson.poisson(jr.key(11), lam, (DRAWS,))).astype(np.int64)
    lo, hi = int(stats.poisson.ppf(1e-5, lam)), int(stats.poisson.ppf(1 - 1e-5, lam))
    assert _chi_square_p(x, lambda k: stats.poisson.cdf(k, lam), lo, hi) > 1e-6


@pytest.mark.parametrize("lam", [1e9, 1e12, 1e15])
def test_poisson_sampler_is_exact_where_jax_poisson_is_not(lam):
    # jax.random.poisson's standard deviation is 20-50 % too large at these lam (float precision
    # of its acceptance test); ours must match sqrt(lam): the sample sd has relative standard
    # error 1/sqrt(2 n) (near-normal law), the mean sqrt(lam / n).
    n = DRAWS
    x = np.asarray(poisson.poisson(jr.key(12), lam, (n,)))
    assert abs(x.mean() - lam) < Z * math.sqrt(lam / n)
    assert abs(x.std() / math.sqrt(lam) - 1.0) < Z / math.sqrt(2 * n)
    assert np.all(x == np.round(x))


def test_negative_binomial_follows_its_law():
    r, p = 7, 0.2  # small: the whole pmf is testable
    x = np.asarray(poisson.negative_binomial(jr.key(13), r, p, (DRAWS,))).astype(np.int64)
    lo, hi = 0, int(stats.nbinom.ppf(1 - 1e-5, r, p))
    assert _chi_square_p(x, lambda k: stats.nbinom.cdf(k, r, p), lo, hi) > 1e-6
    # A Lim-sized block: n_X = 1e9 at P(key detection) = 1e-5 (N ~ 1e14).
    r, p, n = 1e9, 1e-5, DRAWS
    x = np.asarray(poisson.negative_binomial(jr.key(14), r, p, (n,)))
    mean, sd = r * (1 - p) / p, math.sqrt(r * (1 - p)) / p
    assert abs(x.mean() - mean) < Z * sd / math.sqrt(n)
    assert abs(x.std() / sd - 1.0) < Z / math.sqrt(2 * n)


LINK50 = presets.lim2014_link(50.0)
# Near Lim's optimum at 50 km for n_X ~ 1e6 (study finite_lim2014): small blocks want a weak
# signal probability and p_z well below 1 (test-basis statistics).
PROT3 = qmc.DecoyBB84(intensities=(0.43, 0.2, 2e-4), probabilities=(0.2, 0.55, 0.25), p_z=0.78, key_basis="Z")


def test_until_full_sessions_follow_lims_rule():
    n_x, sessions = 1e5, SESSIONS
    p_class, p_out = system_model("exact").sifted_probabilities(LINK50, PROT3)
    tally = sample_until_full(jr.key(15), p_class, p_out, n_x, sessions)
    c = np.asarray(tally.counts)  # (S, k, 2, 4)
    n = np.asarray(tally.n_pulses)
    assert c.dtype == np.int64 and n.dtype == np.int64 and c.min() >= 0
    # The block is full: exactly n_X key-basis detections; mismatched-basis pulses are not in a
    # SiftedTally, so the matched cells hold at most N pulses.
    assert np.all(c[:, :, 0, 1:].sum(axis=(1, 2)) == n_x)
    assert np.all(c.sum(axis=(1, 2, 3)) <= n)
    # F = N - n_X ~ NB(n_X, p): mean n_X (1 - p) / p, sd sqrt(n_X (1 - p)) / p.
    pc, po = np.asarray(p_class), np.asarray(p_out)
    p_key = float((pc[:, 0, None] * po[:, 0, 1:]).sum())
    f = n - n_x
    ef, vf = n_x * (1 - p_key) / p_key, n_x * (1 - p_key) / p_key**2
    assert abs(f.mean() - ef) < Z * math.sqrt(vf / sessions)
    # Key-basis detections split multinomially over (intensity, outcome): each cell Bin(n_X, q).
    q = (pc[:, 0, None] * po[:, 0, 1:]).ravel() / p_key
    cells = c[:, :, 0, 1:].reshape(sessions, -1)
    assert np.all(np.abs(cells.mean(0) - n_x * q) <= Z * np.sqrt(n_x * q * (1 - q) / sessions) + 1e-9)
    # Every other cell is Bin(F, w) with F random: mean E[F] w, variance E[F] w (1 - w) + w^2 Var F.
    w = np.concatenate([pc[:, 0] * po[:, 0, 0], (pc[:, 1, None] * po[:, 1]).ravel()]) / (1 - p_key)
    other = np.concatenate([c[:, :, 0, 0], c[:, :, 1, :].reshape(sessions, -1)], axis=1)
    sd = np.sqrt((ef * w * (1 - w) + w**2 * vf) / sessions)
    assert np.all(np.abs(other.mean(0) - ef * w) <= Z * sd + 1e-9)
    # These laws have the expectations that the analysis uses for expected counts at n_X.
    exp = presets.lim2014_analysis(block_size=n_x).counts(qmc.engines.exact.observations(LINK50, PROT3), PROT3)
    np.testing.assert_allclose(n_x * q.reshape(-1, 3).sum(1), np.asarray(exp.detections)[:, 0], rtol=1e-9)
    k = pc.shape[0]
    x_det = (ef * w[k:].reshape(k, 4)[:, 1:]).sum(1)  # test-basis detections per intensity
    np.testing.assert_allclose(x_det, np.asarray(exp.detections)[:, 1], rtol=1e-9)
    assert n_x + ef == pytest.approx(float(exp.n_pulses), rel=1e-12)


_mc_params = st.tuples(
    st.floats(0.0, 250.0),  # length_km
    st.floats(0.05, 1.0), st.floats(0.01, 0.9),  # mu1, mu2 share
    st.floats(0.05, 0.95), st.floats(0.05, 0.95),  # probabilities
    st.floats(0.05, 0.99),  # p_z
    st.integers(1, 12),  # log10 block size
    st.sampled_from(["exact", "lim2014"]),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mc_params)
def test_no_nan_in_monte_carlo_sessions_on_random_valid_parameters(values):
    length, mu1, share, p1, p2, pz, log_n, model = values
    mu3 = 2e-4 if mu1 > 0.1 else 0.0
    mu2 = mu3 + (mu1 - 2 * mu3) * share
    protocol = qmc.DecoyBB84((mu1, mu2, mu3), (p1, (1 - p1) * p2, (1 - p1) * (1 - p2)), pz, "Z")
    link = presets.lim2014_link(length)
    p_class, p_out = system_model(model, 0.04 if model == "lim2014" else 0.0).sifted_probabilities(link, protocol)
    tally = sample_until_full(jr.key(16), p_class, p_out, 10.0**log_n, SESSIONS)
    assert np.asarray(tally.counts).min() >= 0 and np.all(np.asarray(tally.n_pulses) >= 10**log_n)
    out = session_outcomes(presets.lim2014_analysis(), protocol, tally, phase_error_tolerance=0.2)
    for name, value in out.items():
        assert not np.any(np.isnan(np.asarray(value, dtype=float))), name
    assert np.all(out["key_length"] >= 0)
    np.testing.assert_allclose(out["n_key"], 10.0**log_n, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Monte Carlo beside the bound
# ----------------------------------------------------------------------------------------------


def test_finite_key_mc_study_median_agrees_with_expected_counts(tmp_path):
    _, study, _, chunks = prepare("experiment=finite_key_mc", "sweep.length_km.values=[50]",
                                  "sweep.block_size.values=[1e5]", f"mc.n_sessions={SESSIONS}", "mc.n_bins=20",
                                  *TINY_OPT)
    meta = studies.execute(study, chunks, tmp_path, progress=False)
    assert meta["status"] == "complete"
    rows = read_results(tmp_path)
    summary = {r["rule"]: r for r in rows if r["kind"] == "summary"}
    assert set(summary) == {"until_full", "fixed_pulses"}
    assert len([r for r in rows if r["kind"] == "histogram"]) == 2 * 20
    for rule, s in summary.items():
        assert s["abort_rule"] == finite_key_mc.ABORT_RULE
        assert s["phase_error_tolerance"] == pytest.approx(s["phase_error_expected"] + 0.01)
        assert 0.0 <= s["abort_probability"] < 0.2  # qmc: about 1 %
        kept = SESSIONS * (1 - s["abort_probability"])
        hist = sum(r["count"] for r in rows if r["kind"] == "histogram" and r["rule"] == rule)
        assert hist == pytest.approx(kept)
        # The median key length agrees with the expected-count key length within the spread of
        # the median (sd of the median of a near-normal law: 1.2533 sd / sqrt(S)); qmc: ~0.1 sd.
        assert s["key_length_q05"] < s["key_length_expected"] < s["key_length_q95"]
        se_median = 1.2533 * s["key_length_std"] / math.sqrt(kept)
        assert abs(s["key_length_median"] - s["key_length_expected"]) < Z * se_median
    full, fixed = summary["until_full"], summary["fixed_pulses"]
    # Lim's rule: the block is full (n_key is rebuilt from gains in float64: rounding only)
    assert full["n_key_std"] < 1e-6 and full["n_key_mean"] == pytest.approx(1e5, rel=1e-12)
    assert fixed["n_pulses_std"] == 0.0 and fixed["n_pulses_mean"] == round(fixed["n_pulses_expected"])
    assert full["n_pulses_std"] > 0.0
    assert abs(full["n_pulses_mean"] - full["n_pulses_expected"]) < Z * full["n_pulses_std"] / math.sqrt(SESSIONS)
    assert abs(fixed["n_key_mean"] - 1e5) < Z * fixed["n_key_std"] / math.sqrt(SESSIONS)
    assert (tmp_path / "key_length_histograms.png").stat().st_size > 1000


def test_session_outcomes_abort_rule():
    p_class, p_out = system_model("exact").sifted_probabilities(LINK50, PROT3)
    tally = sample_until_full(jr.key(17), p_class, p_out, 1e6, SESSIONS)
    analysis = presets.lim2014_analysis(block_size=1e6)
    loose = session_outcomes(analysis, PROT3, tally)
    assert not loose["abort"].any() and np.all(loose["key_length"] > 0)
    strict = session_outcomes(analysis, PROT3, tally, phase_error_tolerance=1e-3)
    assert strict["abort"].all() and strict["abort_phase_error"].all() and np.all(strict["key_length"] == 0)
    tiny = sample_until_full(jr.key(18), p_class, p_out, 10.0, SESSIONS)  # 10 detections: no key
    out = session_outcomes(analysis, PROT3, tiny, phase_error_tolerance=0.5)
    assert out["abort_no_key"].all() and not out["abort_phase_error"].any()

