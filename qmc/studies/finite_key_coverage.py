"""Study ``finite_key_coverage``: the finite-key bounds checked by simulation.

A finite-key analysis promises that each of its estimates holds except with a small probability.
Here sessions are simulated in which the quantities being estimated are *known*, each session's
bounds are computed from its observed counts by the analysis itself, and the fraction of sessions
in which a bound fails is compared with the probability the analysis promises. With loose
failure probabilities (eps = 1e-2, 1e-3 per term) failures would be countable in 1e5 sessions.

Sessions. Each session is a block of N pulses, N = n_X / P(key-basis detection) (n_X the block
size: Lim's n_X, Rusca's n_Z; it then fluctuates by about sqrt(n_X)). Its counts are drawn by
:func:`qmc.engines.block.sample_sessions` with hidden photon counts: one multinomial over the
cells (intensity, matched basis, photons sent 0 / 1 / 2+, outcome) plus the mismatched bases, with
the exact engine's probabilities split by photon number (:func:`qmc.engines.exact.photon_outcome_table`).
Pulses are i.i.d., so this is exactly the law of the counts that the physical pulse path
(:func:`qmc.engines.pulse.simulate`, ``path="physical"``, which knows each pulse's photon number)
tallies; ``tests/test_coverage.py`` checks the two against each other at one point. The physical
path itself is not used because it is far too slow for this: about 1.2e7 pulses/s on the 2-core
development CPU, while one session needs 6e6 (25 km, n_X = 1e4) to 5e9 (100 km, n_X = 1e6) pulses
and a point needs 1e5 sessions.

Truth. From the hidden counts: s_1 (single-photon detections, key basis Z and test basis X) and
v_1 (single-photon bit errors of the test basis, double clicks 1/2, as the analyses count errors).
The phase errors of the key basis are counterfactual (what the single-photon key-basis events
would have given measured in the conjugate basis, as the security proofs define them): they are
drawn as Binomial(s_Z,1, e_1) with e_1 the single-photon error probability of an X measurement on
this channel (:func:`phase_error_probability`: the exact engine's Fock-state table, errors with
double clicks counted 1/2, divided by the single-photon yield; detection is basis-independent
here, so e_1 is also the error probability of a key-basis single-photon detection measured in X).
The true phase-error rate of a session is that count / s_Z,1.

Bounds. Each session goes through ``analysis.key_rate_from_observations`` (its own counts and
pulse total) with ``eps_sec = split * eps`` (split = 21 for Lim, 19 for Rusca: every Hoeffding
deviation delta(n, eps) = sqrt(n/2 ln(1/eps)) and the sampling term gamma then use eps) and
``kappa = 0``. The checked estimates are the analysis' own (the capped values it uses in l):
``s1`` (lower bound on s_Z,1), ``s1_test`` (lower, s_X,1), ``v1_test`` (upper, v_X,1) and
``phase_error`` (upper, phi_Z). A lower bound fails when it is above the truth, an upper bound
when below. Where the phase-error bound is undefined (a single-photon bound not positive, or
gamma's logarithm argument below 1) the analysis claims no key: such a session cannot fail, and
it counts among the ``sessions`` (and in ``undefined``), not among the failures, since what is
promised is the probability that a bound is claimed and wrong.

What is promised (``promised``). A one-sided Hoeffding statement n*_k >= n_k - delta or
n*_k <= n_k + delta (Lim, Appendix A, delta of Eq. (A1): |n_k - n*_k| <= delta except with
probability 2 eps, eps per side) fails with probability at most eps; a bound fails only if one of the one-sided
statements it is derived from fails, so by the union bound it fails with probability at most
eps times the number of distinct one-sided statements it uses (:data:`EVENTS`):

* Lim et al. 2014, two decoys (mu1, mu2, mu3):
  s_1 (Eq. (3), with s_0 of Eq. (2)): n^-_mu2, n^+_mu3, n^+_mu1, and n^-_mu3, n^+_mu2 through s_0:
  5 eps per basis. v_1 (Eq. (4)): m^+_mu2, m^-_mu3: 2 eps.
  phi (Eq. (5)): the sampling bound fails with probability at most a = eps (gamma(a, ...) with
  a = eps_sec/21), plus the bounds it reads (s_Z,1, s_X,1, v_X,1: lower bounds on s_Z,1 and
  s_X,1 and an upper bound on v_X,1 can only raise phi, since gamma decreases with s_Z,1 and
  s_X,1, and b + gamma increases with b <= 1/2 wherever gamma's logarithm argument is at least
  e): eps + 5 + 5 + 2 eps = 13 eps.
* Rusca et al. 2018, one decoy (mu1, mu2):
  s_1 (Eq. (A17)): n^-_mu2, n^+_mu1 and, through the vacuum upper bound s_0^u of Eq. (A16),
  m^+_mu2 (the decoy's errors bound the vacuum errors v_0) and s_0 / 2 - v_0 <= delta(n) (vacuum
  detections err with probability 1/2): 4 eps per basis. v_1 (Eq. (A22)): m^+_mu1, m^-_mu2: 2 eps.
  phi (Lim's Eq. (5) with a = eps_sec/19): eps + 4 + 4 + 2 eps = 11 eps.

Charging 2 eps (both sides) for every intensity a bound reads, as for two-sided statements,
would promise more (Lim: 6 eps for s_1, 4 eps for v_1); ``promised`` is the stricter count.
The failure rate is reported with its one-sided Clopper-Pearson bounds (``failure_rate_lo``,
``failure_rate_hi``, at ``confidence``; :func:`one_sided_clopper_pearson`) and a ``verdict``:
``below`` (failure_rate_hi < promised: the promise is verified at that confidence), ``exceeds``
(failure_rate_lo > promised: a bound fails more often than promised, a finding) or
``consistent`` (the sessions cannot tell). ``margin_*`` say how far the bounds are from failing:
margin = truth - bound for lower bounds and bound - truth for upper ones (negative = failure),
with its mean, standard deviation over the sessions and minimum.

Findings (2-core CPU, seed 0). ``qmc experiment=finite_key_coverage`` (Lim's system, e_mis =
0.5 %, 25 / 50 / 100 km, n_X = 1e4 / 1e5 / 1e6, 1e5 sessions each): no bound failed in any session,
so every failure_rate_hi is 3.0e-5 against promises of 2e-3 to 0.13 (at most 0.015 of the
promise); the closest bound (v_X,1, n_X = 1e4) still sits about 4 standard deviations of its
session-to-session spread from failing, and s_1 8 to 32: the decoy estimates' own slack (finite
decoys, the multi-photon terms) is larger than the Hoeffding terms. With a low error rate
(``detector.misalignment=1e-4``, 25 km, n_X = 1e4 and 1e5) the phase-error bound fails in 21 to
29 % of the sessions, 1.7 to 2.6 times its promise at eps = 1e-2 and 17 to 26 times at 1e-3, for
both papers: in the sessions whose test basis records no error, v_X,1 is bounded by 0 (the
Hoeffding terms vanish with the error count), so b = v_X,1 / s_X,1 = 0, and Lim's sampling term
gamma(a, b, c, d) of Eq. (5) tends to 0 with b (b (1 - b) log(1 / (b (1 - b))) -> 0; qmc takes
this limit), so phi = 0 is claimed while the key basis has a phase error whenever s_Z,1 e_1 is
not small. ``zero_bound`` counts those sessions. (At 100 km dark counts make a session without
test-basis errors rare, 6 in 1e5 at n_X = 1e4, and the bound keeps its promise.)

Operating point. At every (length, block size) each analysis' protocol is optimized for the
expected-count key rate of that analysis as configured (e.g. eps_sec = 1e-10), as in
``finite_key_mc``: the bounds are checked where the protocol would run. ``protocols`` (Python
API) fixes the protocol instead.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from qmc import stats
from qmc._compile import jit
from qmc._pytree import replace_path
from qmc.analysis.finite import FINITE, PHASE_UNDEFINED
from qmc.analysis.sessions import key_rates_of_sessions
from qmc.engines import exact
from qmc.engines.block import sample_sessions
from qmc.engines.tally import SiftedTally
from qmc.link import Link
from qmc.protocols import DecoyBB84
from qmc.random import binomial, philox
from qmc.studies.finite_optimize import check_finite_inputs, check_method, optimize_at
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import CoverageSettings
from qmc.studies.spec import analyses as spec_analyses
from qmc.studies.spec import optimize_settings, require_exact_engine, seed, setting, sweep_axis
from qmc.validation import ValidationError, validate

__all__ = [
    "COVERAGE_COLUMNS", "BOUNDS", "EVENTS", "one_sided_clopper_pearson", "phase_error_probability",
    "sample_coverage_sessions", "single_photon_truth", "coverage_rows", "finite_key_coverage",
]

BOUNDS = ("s1", "s1_test", "v1_test", "phase_error")
LOWER = {"s1": True, "s1_test": True, "v1_test": False, "phase_error": False}

# Distinct one-sided statements (each failing with probability <= eps) that each bound rests on;
# see the module docstring for the equations.
EVENTS = {
    "finite_lim2014": {"s1": 5, "s1_test": 5, "v1_test": 2, "phase_error": 13},
    "finite_rusca2018": {"s1": 4, "s1_test": 4, "v1_test": 2, "phase_error": 11},
}

COVERAGE_COLUMNS = (
    "analysis", "length_km", "block_size", "eps", "bound", "sessions", "failures", "failure_rate",
    "failure_rate_lo", "failure_rate_hi", "promised", "verdict", "confidence", "undefined", "zero_bound",
    "true_mean", "estimate_mean", "margin_mean", "margin_sd", "margin_min", "e1", "n_pulses", "n_key_mean",
    "mu1", "mu2", "mu3", "p_mu1", "p_mu2", "p_mu3", "p_z",
)

PURPOSE_PHASE = 0x9A5E  # Philox purpose of the virtual phase errors
_MAX_COUNT = 2.0**53  # counts are float64 while drawn


# ----------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------


def one_sided_clopper_pearson(failures, sessions, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """One-sided Clopper-Pearson bounds on a binomial rate, each at ``confidence``.

    hi = Beta^-1(confidence; k + 1, n - k) (1 at k = n), lo = Beta^-1(1 - confidence; k, n - k + 1)
    (0 at k = 0): the two ends of the two-sided interval at 2 confidence - 1
    (:func:`qmc.stats.clopper_pearson_interval`, bisection of the regularized incomplete beta
    function in float64). With no failures in n sessions, hi = 1 - (1 - confidence)^(1/n) ~ 3/n.

    Returns:
        (lo, hi) as float64 numpy arrays of the broadcast shape of the inputs.
    """
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence = {confidence}: must be in (0.5, 1)")
    lo, hi = _clopper_pearson(np.asarray(failures, np.float64), np.asarray(sessions, np.float64),
                              2.0 * float(confidence) - 1.0)
    return np.asarray(lo, np.float64), np.asarray(hi, np.float64)


_clopper_pearson = jax.jit(stats.clopper_pearson_interval, static_argnames="confidence")


# ----------------------------------------------------------------------------------------------
# Sessions with their single-photon truth
# ----------------------------------------------------------------------------------------------


def phase_error_probability(link: Link, protocol):
    """e_1: error probability of a single photon measured in the test basis X (double clicks 1/2),
    given a detection: the exact engine's Fock-state error gain over its yield."""
    obs = exact.photon_number_observations(link, protocol, 1)
    return obs.error_gain[0, 1] / obs.gain[0, 1]


def single_photon_truth(photon_counts) -> dict:
    """True single-photon quantities of sessions from their hidden counts (S, k, 2, 3, 4).

    Returns:
        dict of (S,) float64 arrays: ``s1`` (single-photon detections, key basis Z), ``s1_test``
        (test basis X) and ``v1_test`` (their bit errors in X, double clicks 1/2).
    """
    c = jnp.asarray(photon_counts, jnp.float64)[..., 1, :]  # (S, k, 2, 4): one photon sent
    det = jnp.sum(c[..., 1] + c[..., 2] + c[..., 3], axis=-2)  # (S, 2)
    err = jnp.sum(c[..., 2] + 0.5 * c[..., 3], axis=-2)
    return {"s1": det[..., 0], "s1_test": det[..., 1], "v1_test": err[..., 1]}


@functools.partial(jax.jit, static_argnames="n_sessions")
def sample_coverage_sessions(key, link: Link, protocol, n_pulses, n_sessions: int):
    """``n_sessions`` sessions of ``n_pulses`` pulses with their single-photon truth.

    Counts: :func:`qmc.engines.block.sample_sessions` (multinomial over matched class x photon
    number 0 / 1 / 2+ x outcome, fast mode). Phase errors: Binomial(s_Z,1, e_1) per session
    (:func:`phase_error_probability`), drawn with qmc's exact binomial sampler.

    Returns:
        (tally, truth): a :class:`SiftedTally` with ``photon_counts`` (leading axis (S,)) and the
        dict of :func:`single_photon_truth` plus ``phase_errors`` and ``phase_error`` (the true
        phase-error rate, 0 without single photons), each (S,), and ``e1`` (a scalar).
    """
    key_counts, key_phase = jr.split(key)
    tally = sample_sessions(key_counts, link, protocol, n_pulses, n_sessions, True, True)
    truth = single_photon_truth(tally.photon_counts)
    e1 = phase_error_probability(link, protocol)
    lane = jnp.arange(n_sessions, dtype=jnp.uint32)
    phase = binomial.binomial(philox.philox_key(key_phase, PURPOSE_PHASE), 0, truth["s1"], e1, lane)
    truth["phase_errors"] = phase
    truth["phase_error"] = jnp.where(truth["s1"] > 0, phase / jnp.maximum(truth["s1"], 1.0), 0.0)
    truth["e1"] = e1
    return tally, truth


_bounds_of_sessions = jit(key_rates_of_sessions)


def session_bounds(analysis, protocol, tally: SiftedTally, eps: float):
    """The analysis' estimates for every session, from its observed counts only, with every
    finite-size term at ``eps`` (eps_sec = split eps, kappa = 0). Returns a
    :class:`qmc.analysis.finite.FiniteKeyRate` with leading axis (S,)."""
    at_eps = dataclasses.replace(analysis, eps_sec=float(eps) * type(analysis).eps_split, kappa=0.0)
    observed = SiftedTally(tally.counts, tally.n_pulses)  # the hidden counts stay hidden
    return _bounds_of_sessions(at_eps, protocol, observed)


def _stat(x, fn, minimum: int = 1):
    return float(fn(x)) if x.size >= minimum else None


def coverage_rows(name: str, result, truth: Mapping[str, Any], eps: float, confidence: float = 0.95) -> list[dict]:
    """One row per bound of :data:`BOUNDS`: how often the analysis' estimates (``result``, (S,))
    fail against ``truth`` (:func:`sample_coverage_sessions`), and what ``name``'s analysis promises.

    Every session counts: one whose phase-error bound is undefined claims nothing, so it cannot
    fail (it is counted in ``undefined``); the promise is about P(bound claimed and wrong).
    ``zero_bound`` counts the sessions whose (defined) estimate is exactly 0.
    """
    estimates = {b: np.asarray(getattr(result, b), np.float64) for b in BOUNDS}
    truths = {b: np.asarray(truth[b], np.float64) for b in BOUNDS}
    defined_phase = (estimates["s1"] > 0) & (estimates["s1_test"] > 0) & (np.asarray(result.reason) != PHASE_UNDEFINED)
    rows = []
    for bound in BOUNDS:
        defined = defined_phase if bound == "phase_error" else np.ones_like(defined_phase)
        est, true = estimates[bound][defined], truths[bound][defined]
        margin = true - est if LOWER[bound] else est - true
        n, k = int(defined.size), int(np.sum(margin < 0.0))
        lo, hi = one_sided_clopper_pearson(k, n, confidence)
        promised = float(f"{EVENTS[name][bound] * float(eps):.15g}")  # 13 * 1e-3 written 0.013
        verdict = "below" if hi < promised else "exceeds" if lo > promised else "consistent"
        rows.append(dict(
            analysis=name, eps=float(eps), bound=bound, sessions=n, failures=k, failure_rate=k / n,
            failure_rate_lo=float(lo), failure_rate_hi=float(hi), promised=promised, verdict=verdict,
            confidence=float(confidence), undefined=int((~defined).sum()), zero_bound=int(np.sum(est == 0.0)),
            true_mean=_stat(true, np.mean), estimate_mean=_stat(est, np.mean), margin_mean=_stat(margin, np.mean),
            margin_sd=_stat(margin, lambda x: np.std(x, ddof=1), 2), margin_min=_stat(margin, np.min),
        ))
    return rows


# ----------------------------------------------------------------------------------------------
# The study
# ----------------------------------------------------------------------------------------------


def _protocol_columns(protocol) -> dict:
    mu = [float(v) for v in np.atleast_1d(np.asarray(protocol.intensities))]
    p = [float(v) for v in np.atleast_1d(np.asarray(protocol.probabilities))]
    out = {f"mu{i + 1}": (mu[i] if i < len(mu) else None) for i in range(3)}
    out.update({f"p_mu{i + 1}": (p[i] if i < len(p) else None) for i in range(3)})
    out["p_z"] = float(protocol.p_z)
    return out


def _check_inputs(link, named, lengths, blocks, eps, n_sessions, confidence, protocols):
    if not named:
        raise ValidationError("analysis.variants: finite_key_coverage needs at least one finite-key analysis "
                              "(finite_lim2014 or finite_rusca2018)")
    check_finite_inputs(link, named, lengths, blocks, "exact", 0.0)
    for label, analysis in named.items():
        if not type(analysis).finite or analysis.name not in EVENTS:
            raise ValidationError(f"analysis.variants.{label}: {analysis.name} has no finite-size terms to check; "
                                  f"finite_key_coverage checks {', '.join(EVENTS)}")
    if np.any(blocks != np.round(blocks)) or np.any(blocks >= _MAX_COUNT):
        raise ValidationError("sweep.block_size: must be whole numbers below 2**53 for Monte Carlo sessions")
    eps = [float(e) for e in np.atleast_1d(np.asarray(eps, np.float64))]
    if not eps:
        raise ValidationError("coverage.eps: needs at least one value")
    for label, analysis in named.items():
        split = type(analysis).eps_split
        for i, e in enumerate(eps):
            if not (0.0 < e < 1.0 / split):
                raise ValidationError(f"coverage.eps[{i}] = {e:g} is out of range: must be in (0, 1/{split:g}) "
                                      f"(eps_sec = {split:g} eps for {analysis.name} must stay below 1)")
    if not (float(n_sessions) == int(n_sessions) and 10 <= int(n_sessions) <= 1_000_000):
        raise ValidationError(f"coverage.n_sessions = {n_sessions} is out of range: must be a whole number in "
                              "[10, 1000000]")
    if not 0.5 < float(confidence) < 1.0:
        raise ValidationError(f"coverage.confidence = {confidence} is out of range: must be in (0.5, 1)")
    for label, protocol in (protocols or {}).items():
        if label not in named:
            raise ValidationError(f"protocols.{label}: no analysis of that name (one of {', '.join(named)})")
        validate(protocol, "protocol.")
        for rule in named[label].protocol_checks(protocol):
            message = rule.error(protocol, "protocol.")
            if message:
                raise ValidationError(message)
    return eps


def finite_key_coverage(
    key,
    link: Link,
    analyses: Mapping[str, Any],
    lengths_km: Sequence[float],
    block_sizes: Sequence[float],
    *,
    eps: Sequence[float] = (1e-2, 1e-3),
    n_sessions: int = 100_000,
    confidence: float = 0.95,
    protocols: Mapping[str, Any] | None = None,
    **optimize_kwargs: Any,
) -> Iterator[Chunk]:
    """How often the finite-key bounds fail, by simulation (see the module docstring).

    Everything is checked before anything compiles; the work is done as the chunks are consumed.

    Args:
        key: JAX PRNG key; the sessions of analysis a (its index in :data:`qmc.analysis.FINITE`)
            at point i use fold_in(fold_in(key, a), i) (independent points). The same sessions serve
            every eps (common random numbers).
        link: the link (a Fiber channel; its length is set per point).
        analyses: label -> finite-key analysis (:class:`qmc.analysis.FiniteLim2014`,
            :class:`qmc.analysis.FiniteRusca2018`); its eps_sec and kappa serve the optimization of
            the operating point, the checks replace them (eps_sec = split eps, kappa = 0).
        lengths_km, block_sizes: the points are every (block size, length) pair; block sizes are
            n_X (whole numbers).
        eps: failure probabilities per term at which the bounds are checked, each in (0, 1/21).
        n_sessions: sessions per (analysis, point), in [10, 1e6].
        confidence: one-sided confidence of the failure-rate bounds.
        protocols: label -> protocol used at every point instead of the optimized one.
        **optimize_kwargs: ``method`` and its settings (:func:`qmc.studies.finite_optimize.optimize_at`).

    Returns:
        An iterator of :class:`Chunk`, one per (analysis, point), rows with :data:`COVERAGE_COLUMNS`
        (one per eps and bound).

    Raises:
        ValidationError: at the call, for bad inputs (named by their config keys); when a point is
            reached whose session would need 2**53 pulses or more (known only once its protocol is).
    """
    named = dict(analyses)
    lengths = np.atleast_1d(np.asarray(lengths_km, np.float64))
    blocks = np.atleast_1d(np.asarray(block_sizes, np.float64))
    eps_list = _check_inputs(link, named, lengths, blocks, eps, n_sessions, confidence, protocols)
    kw = dict(optimize_kwargs)
    method = kw.pop("method", "gradient")
    check_method(method, kw)
    points = [(float(length), float(block)) for block in blocks for length in lengths]
    return _chunks(key, link, named, points, len(lengths), eps_list, int(n_sessions), float(confidence),
                   dict(protocols or {}), method, kw)


def _operating_points(label, analysis, link, points, chain, protocols, method, kw):
    if label in protocols:
        return [protocols[label]] * len(points)
    lengths, blocks = (np.array([p[j] for p in points]) for j in (0, 1))
    kw = dict(kw)
    if method == "search":
        kw["chunk"] = 1
    else:
        kw["chain_length"] = chain
    _, _, optimal = optimize_at(method, analysis, link, lengths, blocks, **kw)
    names = ("mu1", "mu2", "mu3", "p_mu1", "p_mu2", "p_mu3", "p_z")
    return [DecoyBB84.from_parameters({n: row[n] for n in names if n in row}) for row in optimal]


@jax.jit
def _p_key(link, protocol):
    p_class, p_out = exact.sifted_probabilities(link, protocol)
    return jnp.sum(p_class[:, 0] * (1.0 - p_out[:, 0, 0]))


def _chunks(key, link, named, points, chain, eps_list, n_sessions, confidence, protocols, method, kw):
    total = len(named) * len(points)
    index = 0
    for label, analysis in named.items():
        chosen = _operating_points(label, analysis, link, points, chain, protocols, method, kw)
        a_key = jr.fold_in(key, list(FINITE).index(analysis.name))
        for i, ((length, block), protocol) in enumerate(zip(points, chosen)):
            point_link = replace_path(link, "channel.length_km", length)
            p_key = float(_p_key(point_link, protocol))
            n_pulses = round(block / p_key) if p_key > 0 else math.inf
            if not n_pulses < _MAX_COUNT:
                raise ValidationError(f"sweep.block_size = {block:g} at length_km = {length:g}: a session needs "
                                      f"{n_pulses:.3g} pulses, more than 2**53 (take a shorter fiber or a smaller "
                                      "block)")
            tally, truth = sample_coverage_sessions(jr.fold_in(a_key, i), point_link, protocol, float(n_pulses),
                                                    n_sessions)
            n_key = np.asarray(tally.n_detected)[:, :, 0].sum(axis=-1)  # (S,) key-basis detections
            common = dict(length_km=length, block_size=block, e1=float(truth["e1"]), n_pulses=float(n_pulses),
                          n_key_mean=float(np.mean(n_key)), **_protocol_columns(protocol))
            rows = []
            for e in eps_list:
                result = session_bounds(analysis, protocol, tally, e)
                rows.extend(dict(common, **row) for row in coverage_rows(analysis.name, result, truth, e, confidence))
            yield Chunk(rows, index, total)
            index += 1


# -- registry adapter ---------------------------------------------------------------------------


def _run_finite_key_coverage(spec):
    """Registry adapter of study ``finite_key_coverage`` (see :func:`finite_key_coverage`).

    Reads ``analysis.variants`` (its finite-key analyses; asymptotic variants are ignored),
    ``sweep.length_km`` and ``sweep.block_size`` (every pair is a point), ``coverage``
    (:class:`qmc.studies.settings.CoverageSettings`), ``optimize`` and ``seed``.
    """
    require_exact_engine(spec, "finite_key_coverage", "samples the exact engine's photon-number-resolved probabilities")
    settings = setting(spec, "coverage", CoverageSettings)
    named = {label: a for label, a in spec_analyses(spec).items()
             if isinstance(a, tuple(FINITE.values())) and type(a).finite}
    return finite_key_coverage(
        jr.key(seed(spec)), spec["link"], named, sweep_axis(spec, "length_km"), sweep_axis(spec, "block_size"),
        eps=list(settings.eps), n_sessions=int(settings.n_sessions), confidence=float(settings.confidence),
        **optimize_settings(spec).optimizer_kwargs(seed(spec), spec.get("protocol")),
    )


register(Study(name="finite_key_coverage", run=_run_finite_key_coverage, columns=COVERAGE_COLUMNS,
               figure="qmc.plots.coverage:failure_rates", figure_name="coverage"))
