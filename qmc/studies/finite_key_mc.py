"""Study ``finite_key_mc``: Monte Carlo sessions beside the finite-key bound.

The finite-key curves (:mod:`qmc.studies.finite_key`) evaluate the bound at *expected* counts. A real
session observes random counts; here many sessions are simulated at a chosen point (fiber length,
block size n_X, the protocol optimized there), each session's counts go through the *same*
analysis (``Observations`` -> ``key_rate_from_observations`` with the session's own pulse total),
and the distribution of the final key length and the abort probability are reported beside the
expected-count key length.

Session rules. In the protocol of Lim et al. (PRA 89, 022307 (2014), Sec. II) the pulses are
repeated until the key basis holds n_X detections: a session does not have a fixed number of
pulses N; the block is full when the n_X-th key-basis detection arrives. ``"until_full"`` simulates that rule (the test
basis gets whatever the same pulses gave: a test-basis threshold n_Z is not imposed):

* pulses are i.i.d.; a pulse is a key-basis detection (Alice and Bob both in Z, at least one
  click) with probability p = sum_k p_k p_z^2 Q_k,Z, so the pulses that are not, F = N - n_X, are
  negative binomial NB(n_X, p) (failures before the n_X-th success);
* given the stopping, the n_X key-basis detections are i.i.d. over their cells: multinomial over
  (intensity k, outcome correct / error / double click) with weights p_k p_z^2 P(outcome, k, Z);
* the F other pulses are i.i.d. over the remaining cells (key-basis no-clicks per intensity, every
  test-basis outcome per intensity, mismatched bases): multinomial with those probabilities / (1-p).

This is exact in distribution (not a normal approximation). ``"fixed_pulses"`` is the other
common rule: a session of a fixed N = n_X / p pulses (the expected N of the block), drawn by the
block engine (:class:`qmc.engines.BlockEngine`, multinomial counts of the exact engine's
probabilities); then n_X itself fluctuates.

Abort rule (stated in every summary row): a session aborts when the analysis claims no key
(reason other than "ok": single-photon bound not positive, phase-error bound undefined, finite-size
terms larger than the key, ...) or when its phase-error bound phi_X exceeds the tolerance phi_tol
fixed before the sessions (Lim, Sec. II, parameter estimation). phi_tol is
``phase_error_tolerance`` if given, else the expected-count bound plus ``phase_error_margin``. An
aborted session yields no key; the abort probability is reported on its own, and the key-length
statistics (mean, standard deviation, quantiles, histogram) are over the sessions that were not
aborted (the key length given acceptance), empty cells when every session aborted.

Sampling: :func:`qmc.engines.block.sample_until_full` (``jax.random`` with float64 counts, exact
integers below 2**53, stored as int64 in a :class:`qmc.engines.SiftedTally`; the negative binomial
of :mod:`qmc.random.poisson`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Sequence

import jax
import jax.random as jr
import numpy as np

from qmc._pytree import replace_path
from qmc.analysis.finite import FINITE
from qmc.analysis.keyrate import REASONS
from qmc.analysis.sessions import session_outcomes
from qmc.engines.block import BlockEngine, sample_until_full
from qmc.engines.lim2014 import system_model
from qmc.engines.tally import SiftedTally
from qmc.link import Link
from qmc.protocols import DecoyBB84
from qmc.studies.finite_optimize import check_finite_inputs, check_method, optimize_at
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import RULES, FiniteSettings, SessionSettings
from qmc.studies.spec import analyses, optimize_settings, require_exact_engine, seed, setting, sweep_axis
from qmc.validation import ValidationError

__all__ = ["RULES", "MC_COLUMNS", "sample_fixed_pulses", "expected_key", "finite_key_mc"]

MC_COLUMNS = (
    "kind", "length_km", "block_size", "rule", "n_sessions",
    "key_length_expected", "key_length_median", "key_length_q05", "key_length_q25", "key_length_q75",
    "key_length_q95", "key_length_mean", "key_length_std",
    "abort_probability", "abort_no_key", "abort_phase_error", "abort_rule",
    "phase_error_expected", "phase_error_tolerance", "phase_error_median",
    "n_pulses_expected", "n_pulses_mean", "n_pulses_std", "n_key_mean", "n_key_std",
    "key_rate_expected", "key_rate_median",
    "bin_lo", "bin_hi", "count",
    "mu1", "mu2", "mu3", "p_mu1", "p_mu2", "p_mu3", "p_z", "model", "p_afterpulse", "analysis",
)

ABORT_RULE = "reason != ok or phase_error > phase_error_tolerance"


def sample_fixed_pulses(key, link: Link, protocol, n_pulses: float, n_sessions: int) -> SiftedTally:
    """Sessions of a fixed number of pulses, from the block engine (exact engine's physics)."""
    return BlockEngine(n_pulses=int(round(n_pulses)), n_sessions=int(n_sessions), fast=True).tally(
        key, link, protocol)


@jax.jit
def _sifted(model, link, protocol):
    return model.sifted_probabilities(link, protocol)


@jax.jit
def _expected(analysis, model, link, protocol):
    return analysis.key_rate_from_observations(model.observations(None, link, protocol), protocol, link)


def expected_key(analysis, link: Link, protocol, block_size: float, model: str = "exact", p_afterpulse: float = 0.0):
    """The expected-count result (:class:`qmc.analysis.finite.FiniteKeyRate`) at ``block_size``
    for the system model ``model`` (:func:`qmc.engines.lim2014.system_model`)."""
    return _expected(dataclasses.replace(analysis, block_size=float(block_size)), system_model(model, p_afterpulse),
                     link, protocol)


# ----------------------------------------------------------------------------------------------
# The study
# ----------------------------------------------------------------------------------------------


def _stat(fn, x, minimum: int = 1):
    """fn(x) as a float, or None (an empty cell) with fewer than ``minimum`` values."""
    return float(fn(x)) if len(x) >= minimum else None


def _quantiles(x):
    names = ("key_length_q05", "key_length_q25", "key_length_median", "key_length_q75", "key_length_q95")
    if not len(x):
        return dict.fromkeys(names)
    return {n: float(v) for n, v in zip(names, np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95]))}


def finite_key_mc(
    key,
    link: Link,
    analysis,
    lengths_km: Sequence[float],
    block_sizes: Sequence[float],
    *,
    n_sessions: int = 2000,
    rules: Sequence[str] = RULES,
    model: str = "exact",
    p_afterpulse: float = 0.0,
    phase_error_tolerance: float | None = None,
    phase_error_margin: float = 0.01,
    n_bins: int = 40,
    **optimize_kwargs: Any,
) -> Iterator[Chunk]:
    """Monte Carlo sessions through the finite-key analysis at every (length, block size).

    The protocol is first optimized for the expected-count rate at every point (one compiled call:
    :func:`qmc.studies.finite_optimize.maximize_points`, or with ``method="search"`` the derivative-free
    :func:`qmc.studies.finite_optimize.optimize_points`); ``n_sessions`` sessions are then drawn under each
    rule (see the module docstring) and analyzed one by one, point by point.

    Args:
        key: JAX PRNG key; point i and rule r use fold_in(fold_in(key, i), index of r in
            :data:`RULES`) (independent points; a rule's sessions do not depend on the other rules).
        link: the link (a Fiber channel).
        analysis: a finite-key analysis (:class:`qmc.analysis.FiniteLim2014` or
            :class:`qmc.analysis.FiniteRusca2018`); its block size is replaced by each point's.
        lengths_km, block_sizes: the points are every (length, block size) pair.
        n_sessions: sessions per point and rule.
        rules: subset of :data:`RULES`; ``"fixed_pulses"`` needs ``model="exact"`` (the block
            engine samples the exact engine's probabilities).
        model, p_afterpulse: the system model (:func:`qmc.engines.lim2014.system_model`).
        phase_error_tolerance: phi_tol for the abort rule; None: the expected-count bound plus
            ``phase_error_margin``.
        n_bins: histogram bins per point (shared by the rules).
        **optimize_kwargs: ``method`` (``"gradient"``, default, or ``"search"``) and that method's
            settings (:func:`qmc.studies.finite_optimize.maximize_points` / ``optimize_points``).

    Returns:
        An iterator of :class:`qmc.studies.Chunk`, one per point, rows with :data:`MC_COLUMNS`:
        per rule one ``kind == "summary"`` row and ``n_bins`` ``kind == "histogram"`` rows.
    """
    lengths = np.atleast_1d(np.asarray(lengths_km, np.float64))
    blocks = np.atleast_1d(np.asarray(block_sizes, np.float64))
    check_finite_inputs(link, {"finite": analysis}, lengths, blocks, model, p_afterpulse)
    if not type(analysis).finite:
        raise ValidationError(f"analysis: {analysis.name} is asymptotic; finite_key_mc needs a finite-key analysis")
    rules = list(rules)
    for rule in rules:
        if rule not in RULES:
            raise ValidationError(f"mc.rules: {rule!r} must be one of {', '.join(RULES)}")
    if not rules:
        raise ValidationError("mc.rules: needs at least one rule")
    if "fixed_pulses" in rules and model != "exact":
        raise ValidationError("mc.rules: fixed_pulses sessions come from the block engine, which samples the exact "
                              "engine (no afterpulsing): use finite.model=exact or mc.rules=[until_full]")
    if int(n_sessions) < 2:
        raise ValidationError(f"mc.n_sessions = {n_sessions} is out of range: must be >= 2")
    if np.any(blocks >= 2.0**53) or np.any(blocks != np.round(blocks)):
        raise ValidationError("sweep.block_size: must be whole numbers below 2**53 for Monte Carlo sessions")
    if int(n_bins) < 1:
        raise ValidationError(f"mc.n_bins = {n_bins} is out of range: must be >= 1")
    points = [(float(l_), float(b)) for l_ in lengths for b in blocks]
    return _mc_chunks(key, link, analysis, points, int(n_sessions), rules, model, float(p_afterpulse),
                      phase_error_tolerance, float(phase_error_margin), int(n_bins), optimize_kwargs)


def _mc_chunks(key, link, analysis, points, n_sessions, rules, model, p_ap, phi_tol, margin, n_bins, kw):
    kw = dict(kw)
    method = kw.pop("method", "gradient")
    check_method(method, kw)
    if method == "search":
        kw["chunk"] = 1
    lengths, blocks = (np.array([p[j] for p in points]) for j in (0, 1))
    _, _, optimal = optimize_at(method, analysis, link, lengths, blocks, model=model, p_afterpulse=p_ap, **kw)
    for i, (length, block) in enumerate(points):
        point_link = replace_path(link, "channel.length_km", length)
        params = {name: optimal[i][name] for name in ("mu1", "mu2", "mu3", "p_mu1", "p_mu2", "p_mu3", "p_z")
                  if name in optimal[i]}
        protocol = DecoyBB84.from_parameters(params)
        exp = expected_key(analysis, point_link, protocol, block, model, p_ap)
        l_exp, phi_exp, n_exp = float(exp.key_length), float(exp.phase_error), float(exp.n_pulses)
        ok_exp = REASONS[int(exp.reason)] == "ok"
        tol = float(phi_tol) if phi_tol is not None else phi_exp + margin
        common = dict(length_km=length, block_size=block, n_sessions=n_sessions, model=model, p_afterpulse=p_ap,
                      analysis=analysis.name, **params)
        outcomes = {}
        for rule in rules:
            rule_key = jr.fold_in(jr.fold_in(key, i), RULES.index(rule))
            if rule == "until_full":
                p_class, p_out = _sifted(system_model(model, p_ap), point_link, protocol)
                tally = sample_until_full(rule_key, p_class, p_out, block, n_sessions)
            else:
                tally = sample_fixed_pulses(rule_key, point_link, protocol, n_exp, n_sessions)
            outcomes[rule] = session_outcomes(analysis, protocol, tally, tol)
        kept_all = np.concatenate([o["key_length"][~o["abort"]] for o in outcomes.values()])
        if kept_all.size:
            lo, hi = float(kept_all.min()), float(kept_all.max())
            edges = np.linspace(lo, hi if hi > lo else lo + 1.0, n_bins + 1)
        else:
            edges = np.linspace(0.0, 1.0, n_bins + 1)
        rows = []
        for rule, o in outcomes.items():
            kept = ~o["abort"]
            bits = o["key_length"][kept]  # statistics given acceptance; aborts are counted apart
            rows.append(dict(
                common, kind="summary", rule=rule,
                key_length_expected=max(l_exp, 0.0) if ok_exp else 0.0,
                key_length_mean=_stat(np.mean, bits), key_length_std=_stat(lambda x: np.std(x, ddof=1), bits, 2),
                **_quantiles(bits),
                abort_probability=float(o["abort"].mean()), abort_no_key=float(o["abort_no_key"].mean()),
                abort_phase_error=float(o["abort_phase_error"].mean()), abort_rule=ABORT_RULE,
                phase_error_expected=phi_exp, phase_error_tolerance=tol,
                phase_error_median=float(np.median(o["phase_error"])),
                n_pulses_expected=n_exp, n_pulses_mean=float(o["n_pulses"].mean()),
                n_pulses_std=float(o["n_pulses"].std(ddof=1)), n_key_mean=float(o["n_key"].mean()),
                n_key_std=float(o["n_key"].std(ddof=1)),
                key_rate_expected=float(exp.rate), key_rate_median=_stat(np.median, o["key_rate"][kept]),
            ))
            counts, _ = np.histogram(bits, bins=edges)
            rows.extend(dict(common, kind="histogram", rule=rule, bin_lo=float(edges[j]), bin_hi=float(edges[j + 1]),
                             count=int(counts[j])) for j in range(n_bins))
        yield Chunk(rows, i, len(points))


# -- registry adapter ---------------------------------------------------------------------------


def _run_finite_key_mc(spec):
    """Registry adapter of study ``finite_key_mc`` (see :func:`finite_key_mc`).

    Reads ``analysis.variants`` (the one finite-key analysis; asymptotic variants are ignored),
    ``sweep.length_km`` and ``sweep.block_size`` (every pair is a point), ``finite.model`` and
    ``finite.p_afterpulse``, ``mc`` (n_sessions, rules, phase_error_tolerance,
    phase_error_margin, n_bins), ``optimize`` and ``seed``.
    """
    require_exact_engine(spec, "finite_key_mc", "uses expected counts (finite.model selects the exact engine or Lim's closed-form model)")
    finite = setting(spec, "finite", FiniteSettings)
    mc = setting(spec, "mc", SessionSettings)
    finite_variants = [a for a in analyses(spec).values() if isinstance(a, tuple(FINITE.values())) and type(a).finite]
    if len(finite_variants) != 1:
        raise ValidationError("analysis.variants: study finite_key_mc needs exactly one finite-key analysis "
                              "(analysis=finite_lim2014 or finite_rusca2018)")
    tol = mc.phase_error_tolerance
    return finite_key_mc(
        jr.key(seed(spec)), spec["link"], finite_variants[0], sweep_axis(spec, "length_km"),
        sweep_axis(spec, "block_size"), n_sessions=int(mc.n_sessions), rules=list(mc.rules), model=finite.model,
        p_afterpulse=float(finite.p_afterpulse), phase_error_tolerance=None if tol is None else float(tol),
        phase_error_margin=float(mc.phase_error_margin), n_bins=int(mc.n_bins),
        **optimize_settings(spec).optimizer_kwargs(seed(spec), spec.get("protocol")),
    )


register(Study(name="finite_key_mc", run=_run_finite_key_mc, columns=MC_COLUMNS, figure="qmc.plots.finite:key_length_histograms",
               figure_name="key_length_histograms"))
