"""Study finite_key_coverage: its statistics, its sampler against the physical pulse path, that a
broken bound is caught, its rows, its config and its figure."""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import pytest
import scipy.stats

import qmc
from qmc import cli
from qmc._pytree import replace_path
from qmc.engines.exact import sifted_probabilities
from qmc.engines.pulse import simulate
from qmc.presets import lim2014_analysis, lim2014_link
from qmc.protocols import DecoyBB84
from qmc.studies import finite_key_coverage as cov

Z = 5.0  # tolerance in standard errors (two-sided false alarm ~6e-7)

# Protocols near the optimum of each analysis at n_X = 1e4 on Lim's system (what the study's
# optimizer picks), fixed so that the tests compile no optimizer.
PROTOCOLS = {
    "finite_lim2014": DecoyBB84(intensities=(0.6, 0.16, 2e-4), probabilities=(0.07, 0.51, 0.42), p_z=0.58,
                                key_basis="Z"),
    "finite_rusca2018": DecoyBB84(intensities=(0.45, 0.11), probabilities=(0.18, 0.82), p_z=0.54, key_basis="Z"),
}
ANALYSES = {name: lim2014_analysis(name, kappa=0.0, eps_sec=1e-10) for name in PROTOCOLS}
SESSIONS = 400  # every test draws this many sessions: one compiled sampler per number of intensities


@pytest.fixture(scope="module")
def rows():
    chunks = list(cov.finite_key_coverage(jax.random.key(0), lim2014_link(), ANALYSES, [50.0], [1e4],
                                          eps=(1e-2, 1e-3), n_sessions=SESSIONS, protocols=PROTOCOLS))
    assert [c.index for c in chunks] == [0, 1] and all(c.total == 2 for c in chunks)
    return [row for c in chunks for row in c.rows]


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_one_sided_clopper_pearson_matches_scipy(confidence):
    k = np.array([0, 0, 1, 3, 17, 500, 999, 1000, 10_000])
    n = np.array([10, 10_000, 10, 1000, 20_000, 1000, 1000, 1000, 10_000])
    lo, hi = cov.one_sided_clopper_pearson(k, n, confidence)
    with np.errstate(all="ignore"):
        hi_ref = np.where(k < n, scipy.stats.beta.ppf(confidence, k + 1, n - k), 1.0)
        lo_ref = np.where(k > 0, scipy.stats.beta.ppf(1.0 - confidence, k, n - k + 1), 0.0)
    np.testing.assert_allclose(hi, hi_ref, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(lo, lo_ref, rtol=1e-9, atol=1e-15)
    # no failure in n sessions: hi = 1 - (1 - confidence)^(1/n)
    assert math.isclose(hi[1], 1.0 - (1.0 - confidence) ** (1.0 / 10_000), rel_tol=1e-9)


# ---------------------------------------------------------------------------------------------
# The sampler against the physical pulse path
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow  # about 12 s, most of it compiling the physical path
def test_sampler_has_the_law_of_the_physical_path():
    """The photon-number-resolved cells (intensity, basis, photons 0/1/2+, outcome) of the physical
    path (which draws each pulse's photons, losses and dark counts) against the probabilities the
    study's multinomial sampler draws from (chi-square, p > 6e-7 ~ z = 5), and the sampler's
    sessions against the multinomial's means and variances (z = 5)."""
    link = replace_path(lim2014_link(), "channel.length_km", 5.0)
    protocol = DecoyBB84(intensities=(0.5, 0.15), probabilities=(0.5, 0.5), p_z=0.5, key_basis="Z")
    n = 2**22
    physical = simulate(jax.random.key(3), link, protocol, n, path="physical", chunk=2**20, block_pulses=2**20,
                        photon_counts=True).sifted()
    observed = np.asarray(physical.photon_counts, np.float64).ravel()  # (k, 2, 3, 4)
    p_class, p_out = sifted_probabilities(link, protocol, photon_counts=True)
    p = np.asarray(p_class[:, :, None, None] * p_out).ravel()
    expected = n * p
    big = expected >= 20.0  # chi-square cells; the rest (double clicks, ...) pooled into one
    stat = np.sum((observed[big] - expected[big]) ** 2 / expected[big])
    dof = int(big.sum())  # no constraint among them: the mismatched-basis cell is left out
    rest_obs, rest_exp = observed[~big].sum(), expected[~big].sum()
    if rest_exp >= 5.0:
        stat += (rest_obs - rest_exp) ** 2 / rest_exp
        dof += 1
    assert scipy.stats.chi2.sf(stat, dof) > 6e-7, (stat, dof)
    # the single-photon cells, the ones the study's truth reads, one by one
    one = np.zeros((2, 2, 3, 4), bool)
    one[:, :, 1, 1:] = True
    for o, e in zip(observed[one.ravel()], expected[one.ravel()]):
        assert abs(o - e) <= Z * math.sqrt(e) + 1.0, (o, e)

    s = SESSIONS  # the study's compiled sampler (same shapes as the rows fixture)
    tally, truth = cov.sample_coverage_sessions(jax.random.key(4), link, protocol, float(n), s)
    counts = np.asarray(tally.photon_counts, np.float64).reshape(s, -1)
    mean, var = counts.mean(axis=0), counts.var(axis=0, ddof=1)
    for j in np.flatnonzero(expected >= 100.0):
        sd = math.sqrt(expected[j] * (1.0 - p[j]))
        assert abs(mean[j] - expected[j]) <= Z * sd / math.sqrt(s), (j, mean[j], expected[j])
        assert abs(var[j] / sd**2 - 1.0) <= Z * math.sqrt(2.0 / (s - 1)), (j, var[j], sd**2)
    # the physical tally lies within the sampler's spread too
    big_cells = expected >= 100.0
    assert np.all(np.abs(observed[big_cells] - mean[big_cells]) <= Z * np.sqrt(var[big_cells] * (1 + 1 / s)))
    # the hidden counts are the observed ones split by photon number
    np.testing.assert_array_equal(np.asarray(tally.photon_counts).sum(axis=-2), np.asarray(tally.counts))


def test_virtual_phase_errors_are_binomial_in_the_single_photon_error_probability():
    link = replace_path(lim2014_link(), "channel.length_km", 50.0)
    protocol = PROTOCOLS["finite_rusca2018"]
    tally, truth = cov.sample_coverage_sessions(jax.random.key(5), link, protocol, 3e7, SESSIONS)
    e1 = float(truth["e1"])  # cov.phase_error_probability, evaluated inside the compiled sampler
    # One photon, transmittance eta, misalignment e_d, dark counts p_d per detector (threshold
    # detectors, double clicks 1/2 an error): e_1 = (P(wrong only) + P(double) / 2) / P(click).
    eta = 10 ** (-0.2 * 50.0 / 10) * 0.1
    e_d, p_d = 5e-3, 6e-7
    wrong = (eta * e_d + (1 - eta) * p_d) * (1 - p_d)
    double = eta * p_d + (1 - eta) * p_d**2
    assert math.isclose(e1, (wrong + double / 2) / (1 - (1 - eta) * (1 - p_d) ** 2), rel_tol=1e-9)
    s1 = np.asarray(truth["s1"])
    errors = np.asarray(truth["phase_errors"])
    assert np.all((errors >= 0) & (errors <= s1)) and np.all(errors == np.round(errors))
    total, trials = errors.sum(), s1.sum()
    assert abs(total - trials * e1) <= Z * math.sqrt(trials * e1 * (1 - e1)), (total, trials * e1)
    np.testing.assert_allclose(truth["phase_error"], errors / s1)


# ---------------------------------------------------------------------------------------------
# Failures are counted
# ---------------------------------------------------------------------------------------------


def test_a_broken_bound_is_caught():
    """The same sessions through the real analysis pass, and through deliberately broken bounds
    (s_1 doubled, the phase-error bound replaced by a tenth of itself) fail far beyond their promise."""
    link = replace_path(lim2014_link(), "channel.length_km", 50.0)
    name = "finite_lim2014"
    protocol = PROTOCOLS[name]
    tally, truth = cov.sample_coverage_sessions(jax.random.key(6), link, protocol, 2.5e7, SESSIONS)
    result = cov.session_bounds(ANALYSES[name], protocol, tally, 1e-2)
    good = {r["bound"]: r for r in cov.coverage_rows(name, result, truth, 1e-2)}
    assert all(r["failures"] == 0 for r in good.values()), good
    broken = dataclasses.replace(result, s1=result.s1 * 2.0, v1_test=result.v1_test * 0.0,
                                 phase_error=result.phase_error * 0.1)
    bad = {r["bound"]: r for r in cov.coverage_rows(name, broken, truth, 1e-2)}
    for bound in ("s1", "v1_test", "phase_error"):
        assert bad[bound]["verdict"] == "exceeds", bad[bound]
        assert bad[bound]["failure_rate_lo"] > bad[bound]["promised"], bad[bound]
    assert bad["s1"]["failures"] == SESSIONS and bad["s1"]["margin_min"] < 0
    assert bad["s1_test"] == good["s1_test"]


# ---------------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------------


def test_rows_have_the_columns_and_no_nan(rows):
    assert len(rows) == 2 * 2 * len(cov.BOUNDS)  # analyses x eps x bounds
    for row in rows:
        assert set(row) == set(cov.COVERAGE_COLUMNS), set(row) ^ set(cov.COVERAGE_COLUMNS)
        for key, value in row.items():
            assert not (isinstance(value, float) and math.isnan(value)), (key, row)
        assert row["sessions"] == SESSIONS and 0 <= row["failures"] <= row["sessions"]
        assert 0.0 <= row["failure_rate_lo"] <= row["failure_rate"] <= row["failure_rate_hi"] <= 1.0
        assert math.isclose(row["promised"], cov.EVENTS[row["analysis"]][row["bound"]] * row["eps"], rel_tol=1e-12)
        # Lim's system at 50 km: no bound fails, and 400 sessions cannot resolve the smallest promises
        assert row["failures"] == 0 and row["verdict"] in ("below", "consistent"), row
        assert row["margin_min"] > 0
    lim = [r for r in rows if r["analysis"] == "finite_lim2014"]
    rusca = [r for r in rows if r["analysis"] == "finite_rusca2018"]
    assert all(r["mu3"] == 2e-4 for r in lim) and all(r["mu3"] is None and r["p_mu3"] is None for r in rusca)


def test_study_validates_before_compiling():
    link = lim2014_link()
    with pytest.raises(qmc.ValidationError, match=r"coverage\.eps\[1\] = 0\.05 is out of range"):
        cov.finite_key_coverage(jax.random.key(0), link, ANALYSES, [50.0], [1e4], eps=(1e-2, 0.05))
    with pytest.raises(qmc.ValidationError, match=r"coverage\.n_sessions = 5 is out of range"):
        cov.finite_key_coverage(jax.random.key(0), link, ANALYSES, [50.0], [1e4], n_sessions=5)
    with pytest.raises(qmc.ValidationError, match=r"sweep\.block_size"):
        cov.finite_key_coverage(jax.random.key(0), link, ANALYSES, [50.0], [1e4 + 0.5])
    with pytest.raises(qmc.ValidationError, match=r"sweep\.length_km"):
        cov.finite_key_coverage(jax.random.key(0), link, ANALYSES, [-1.0], [1e4])
    with pytest.raises(qmc.ValidationError, match="no finite-size terms"):
        cov.finite_key_coverage(jax.random.key(0), link, {"a": qmc.analysis.AsymptoticTwoDecoy()}, [50.0], [1e4])
    wrong = {"finite_rusca2018": PROTOCOLS["finite_lim2014"]}
    with pytest.raises(qmc.ValidationError, match="2 intensities"):
        cov.finite_key_coverage(jax.random.key(0), link, ANALYSES, [50.0], [1e4], protocols=wrong)


def test_config_composes_builds_and_validates():
    study, spec, chunks = cli.prepare(cli.compose("experiment=finite_key_coverage"))
    assert study.name == "finite_key_coverage" and study.columns == cov.COVERAGE_COLUMNS
    assert set(spec["analysis"]["variants"]) == {"finite_lim2014", "finite_rusca2018"}
    settings = spec["coverage"]
    assert settings.eps == (1e-2, 1e-3) and settings.n_sessions >= 2000
    assert hasattr(chunks, "__next__")  # validated; nothing compiled yet
    with pytest.raises(qmc.ValidationError, match=r"coverage\.eps\[0\] = 0\.5 is out of range"):
        cli.prepare(cli.compose("experiment=finite_key_coverage", "coverage.eps=[0.5]"))
    with pytest.raises(qmc.ValidationError, match=r"coverage\.n_sessions"):
        cli.prepare(cli.compose("experiment=finite_key_coverage", "coverage.n_sessions=3"))


def test_figure_draws_from_rows(rows, tmp_path):
    import matplotlib

    matplotlib.use("Agg", force=True)
    from qmc.plots.coverage import failure_rates
    from qmc.plots.style import save

    fig = failure_rates(rows, title="Lim's system · 50 km")
    assert len(fig.axes) == 2
    png, pdf = save(fig, tmp_path / "coverage", dpi=60)
    assert png.stat().st_size > 0 and pdf.stat().st_size > 0
    # on a caller's axes, with failures to show
    broken = [dict(r, failures=7, failure_rate=7 / SESSIONS, failure_rate_lo=0.008) for r in rows]
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    assert failure_rates(broken, ax=ax).axes[0] is ax
    plt.close("all")


def test_phase_error_failures_at_a_low_error_rate_are_the_sessions_without_test_errors():
    """The finding of the study's docstring, pinned to its cause: on a link with a low error rate
    the phase-error bound fails, and only in sessions where it is 0 (no error in the test basis,
    so b = 0 and gamma = 0 in Lim's Eq. (5)). A bound valid at b = 0 would make the first
    assertion fail and keep the second."""
    link = replace_path(replace_path(lim2014_link(), "channel.length_km", 25.0), "detector.misalignment", 1e-4)
    name = "finite_rusca2018"
    protocol = PROTOCOLS[name]
    tally, truth = cov.sample_coverage_sessions(jax.random.key(7), link, protocol, 6e6, SESSIONS)
    result = cov.session_bounds(ANALYSES[name], protocol, tally, 1e-3)
    phi, true = np.asarray(result.phase_error), np.asarray(truth["phase_error"])
    failed = phi < true
    row = {r["bound"]: r for r in cov.coverage_rows(name, result, truth, 1e-3)}["phase_error"]
    assert row["failures"] == failed.sum() and row["verdict"] == "exceeds", row  # the finding, as of today
    test_errors = np.asarray(tally.n_errors)[:, :, 1].sum(axis=-1)
    assert np.all(phi[failed] == 0.0) and np.all(test_errors[failed] == 0.0)
