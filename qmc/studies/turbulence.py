"""Study ``turbulence_fading``: the fading laws of a free-space link, sampled against their exact
moments and densities, and what fading does to the key rate.

The transmittance of a turbulent free-space link is T = T_mean X, X >= 0 of mean 1
(:mod:`qmc.freespace.fading`): log-normal (weak turbulence), Gamma-Gamma (Al-Habash, Andrews,
Phillips, Opt. Eng. 40, 1554 (2001): alpha and beta from the Rytov variance) and beam wander
(Vasylyev, Semenov, Vogel, PRL 108, 220501 (2012): a Gaussian beam of 1/e^2 radius W wandering
with standard deviation sigma per axis over an aperture of radius a; the exact aperture
transmittance, a Marcum Q function). Rows of three kinds:

* ``fading``: per law and Rytov variance (beam wander: per W, a, sigma, no Rytov variance),
  ``fading.n_samples`` draws of X from a fixed key (``seed``): the Monte Carlo scintillation
  index Var X, mean transmittance (<T> X for beam wander, X otherwise) with its standard error,
  and fraction of slots below half the mean transmittance, beside the exact values (the law's
  closed form, quadrature and distribution function);
* ``histogram``: the draws' histogram (density per bin), the exact probability of each bin over its
  width (from the law's cdf) and the density at the bin's centre (beam wander: the paper's
  approximation, :func:`qmc.freespace.fading.beam_wander_pdf_approx`);
* ``key_rate``: decoy BB84 through :class:`qmc.freespace.channel.FreeSpaceChannel` versus mean
  loss (``sweep.loss_db``), the signal intensity optimized on ``optimize.mu``: ``key_rate`` with
  the fading (the exact engine averages the outcome probabilities over X: the counts of all
  slots pooled into one asymptotic analysis), ``key_rate_fixed`` at the fixed mean loss, and
  ``key_rate_slots``, the mean over X of the rate of a slot analysed on its own (each slot its
  own asymptotic parameter estimation, one signal intensity for all; the slot transmittance
  capped at 1), which is what sorting detections by the measured transmittance can reach
  (Vallone et al., PRA 91, 042320 (2015); Erven et al., NJP 14, 123018 (2012)).

Figure: :func:`qmc.plots.turbulence.turbulence_fading`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from types import SimpleNamespace
from typing import Any, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qmc.analysis import reason_text
from qmc.freespace.channel import FreeSpaceChannel
from qmc.freespace.fading import Fading
from qmc.link import Link
from qmc.studies.key_rate import _check_pair, _NO_SIGNAL_INTENSITY, _point_fn, protocol_for
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import Sweep
from qmc.studies.spec import analyses, optimize_settings, require_exact_engine, seed, setting
from qmc.sweep import grid, maximize_on_grid, run
from qmc.validation import Check, Range, ValidationError, validate, whole

__all__ = ["turbulence_fading", "fading_statistics", "TURBULENCE_COLUMNS", "FADING_LAWS", "FadingOptions"]

FADING_LAWS = ("lognormal", "gamma_gamma", "beam_wander")
TURBULENCE_COLUMNS = (
    "kind", "law", "rytov_variance", "alpha", "beta", "beam_width_m", "aperture_radius_m", "wander_sigma_m",
    "n_samples", "scintillation_index", "scintillation_index_exact", "mean_transmittance",
    "mean_transmittance_stderr", "mean_transmittance_exact", "p_below_half", "p_below_half_exact",
    "bin_lo", "bin_hi", "density", "density_exact", "pdf",
    "loss_db", "analysis", "key_rate", "key_rate_fixed", "key_rate_slots", "mu", "mu_fixed", "mu_slots",
    "max_slot_transmittance", "reason",
)
_HIST_QUANTILE = 0.995  # histograms span X in [0, this quantile of the draws]
_QUADRATURE_NODES = 16  # Fading.quadrature's default: the exact engine's rule

log = logging.getLogger("qmc")


@dataclasses.dataclass(frozen=True)
class FadingOptions:
    """The ``fading`` group of ``turbulence_fading`` (a plain mapping in the config).

    Attributes:
        laws: which of :data:`FADING_LAWS` to run.
        beam_width_m, aperture_radius_m, wander_sigma_m: beam wander's W (1/e^2 radius at the
            aperture), a and sigma (deflection per axis), m.
        n_samples: draws of X per law and Rytov variance (>= 2e5 resolves <T> to about 1e-3).
        n_bins: histogram bins.
        slot_nodes: quadrature nodes of ``key_rate_slots`` (:meth:`Fading.quadrature` ``n``).
    """

    laws: tuple = FADING_LAWS
    beam_width_m: float = 0.2
    aperture_radius_m: float = 0.1
    wander_sigma_m: float = 0.1
    n_samples: int = 262_144
    n_bins: int = 60
    slot_nodes: int = 8

    def checks(self):
        def laws_ok(o, prefix):
            laws = [o.laws] if isinstance(o.laws, str) else list(o.laws)
            bad = [law for law in laws if law not in FADING_LAWS]
            if laws and not bad:
                return None
            shown = bad[0] if bad else "[]"
            return f"{prefix}laws = {shown}: unknown law; must be a non-empty list of {', '.join(FADING_LAWS)}"

        return [Check(laws_ok), whole("n_samples", 2), whole("n_bins", 1), whole("slot_nodes", 2)]

    @classmethod
    def from_spec(cls, value: Any) -> "FadingOptions":
        """From the config's ``fading`` mapping (None: the defaults); unknown keys are refused."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise ValidationError(f"fading: expected a mapping of {', '.join(f.name for f in dataclasses.fields(cls))}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ValidationError(f"fading.{unknown[0]}: unknown key; the keys are {', '.join(sorted(names))}")
        laws = value.get("laws", FADING_LAWS)
        return cls(**{**value, "laws": (laws,) if isinstance(laws, str) else tuple(laws)})

    def law(self, law: str, rytov_variance: float | None) -> Fading:
        return Fading(law, rytov_variance=0.0 if rytov_variance is None else float(rytov_variance),
                      beam_width_m=float(self.beam_width_m), aperture_radius_m=float(self.aperture_radius_m),
                      wander_sigma_m=float(self.wander_sigma_m))


def _entries(options: FadingOptions, rytov: np.ndarray) -> list:
    """(law, Rytov variance or None): beam wander does not depend on the Rytov variance."""
    return [(law, None) if law == "beam_wander" else (law, float(r))
            for law in options.laws for r in ([None] if law == "beam_wander" else rytov)]


# --------------------------------------------------------------------------------------------
# Fading statistics: Monte Carlo against exact
# --------------------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnums=2)
def _draw_transmittance(fading: Fading, key, n: int):
    """n draws of T / T_mean: <T> X for beam wander (the exact aperture transmittance), X otherwise."""
    return fading.sample(key, (n,)) * fading.mean_transmittance()


def _exact_scintillation(fading: Fading):
    """Var X: sigma_I^2 of the log-normal, 1/alpha + 1/beta + 1/(alpha beta) of Gamma-Gamma, and
    E[X^2] - 1 by beam wander's quadrature (exact aperture transmittance)."""
    if fading.law == "lognormal":
        return fading.lognormal_index()
    if fading.law == "gamma_gamma":
        a, b = fading.shapes()
        return 1.0 / a + 1.0 / b + 1.0 / (a * b)
    x, w = fading.quadrature(64)
    return jnp.sum(w * x ** 2) - 1.0


@jax.jit
def _law_values(fading: Fading, edges, centres):
    """One compiled call per law: (Var X, P(X <= 1/2), P(X <= edges), density at centres)."""
    cdf = fading.cdf(jnp.concatenate([jnp.full(1, 0.5), edges]))
    return _exact_scintillation(fading), cdf[0], cdf[1:], fading.pdf(centres)


def fading_statistics(key, fading: Fading, n_samples: int, n_bins: int) -> tuple[dict, list]:
    """The ``fading`` row and ``histogram`` rows (:data:`TURBULENCE_COLUMNS`) of one law.

    Args:
        key: JAX PRNG key of the draws.
        fading: the law (:class:`qmc.freespace.fading.Fading`, law other than ``none``).
        n_samples, n_bins: draws of X, histogram bins on [0, the 99.5 % quantile].
    """
    mean_exact = float(fading.mean_transmittance())
    t = np.asarray(_draw_transmittance(fading, key, int(n_samples)))
    x = t / mean_exact
    n = x.size
    p_below = float(np.mean(x < 0.5))
    alpha, beta = (float(v) for v in fading.shapes()) if fading.law == "gamma_gamma" else (None, None)
    wander = fading.law == "beam_wander"
    base = {
        "law": fading.law, "rytov_variance": None if wander else float(fading.rytov_variance),
        "alpha": alpha, "beta": beta,
        "beam_width_m": float(fading.beam_width_m) if wander else None,
        "aperture_radius_m": float(fading.aperture_radius_m) if wander else None,
        "wander_sigma_m": float(fading.wander_sigma_m) if wander else None, "n_samples": n,
    }
    variance = float(np.var(x))
    zero = variance == 0.0  # X = 1 exactly (zero variance): no histogram, no density
    edges = np.linspace(0.0, 1.0 if zero else float(np.quantile(x, _HIST_QUANTILE)), int(n_bins) + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    variance_exact, below_exact, cdf, pdf = (np.asarray(v) for v in _law_values(fading, edges, centres))
    row = {
        **base, "kind": "fading",
        "scintillation_index": variance, "scintillation_index_exact": float(variance_exact),
        "mean_transmittance": float(np.mean(t)), "mean_transmittance_stderr": float(np.std(t) / math.sqrt(n)),
        "mean_transmittance_exact": mean_exact,
        "p_below_half": p_below, "p_below_half_exact": 0.0 if zero else float(below_exact),
    }
    if zero:
        return row, []
    width = np.diff(edges)
    counts, _ = np.histogram(x, edges)
    hist = [{**base, "kind": "histogram", "bin_lo": float(edges[i]), "bin_hi": float(edges[i + 1]),
             "density": float(counts[i] / (n * width[i])), "density_exact": float((cdf[i + 1] - cdf[i]) / width[i]),
             "pdf": float(pdf[i])} for i in range(len(centres))]
    return row, hist


# --------------------------------------------------------------------------------------------
# Key rate versus mean loss
# --------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def _slots_point(labels: tuple, optimized: tuple, n_nodes: int):
    """Per loss: max over mu of sum_i w_i R(T_mean min(x_i, 1 / T_mean)), each slot's own rate."""

    def point(tree):
        link = tree["link"]
        channel = link.channel
        nodes, weights = channel.fading.quadrature(n_nodes)
        cap = 10.0 ** (channel.loss / 10.0)  # x at which the slot's transmittance reaches 1
        out = {}
        for label, optimize in zip(labels, optimized):
            analysis = tree["analyses"][label]

            def mean_rate(t, analysis=analysis):
                def at(x):
                    frozen = dataclasses.replace(t["link"], channel=t["link"].channel.frozen(jnp.minimum(x, cap)))
                    return analysis.key_rate(frozen, t["protocol"]).rate
                return jnp.sum(weights * jax.vmap(at)(nodes))

            sub = {"link": link, "protocol": tree["protocols"][label]}
            if optimize:
                out[label] = maximize_on_grid(mean_rate, sub, "protocol.intensities.0", tree["mu_grid"],
                                              score=lambda r: r)
            else:
                out[label] = (mean_rate(sub), jnp.asarray(sub["protocol"].intensities)[0])
        out["max_x"] = jnp.max(jnp.where(weights > 0, nodes, 0.0)) / cap  # the largest node's T
        return out

    return point


def _sweep(point, link, protocols, analyses_, losses, mus):
    tree = {"link": link, "protocols": protocols, "analyses": analyses_,
            "mu_grid": jnp.zeros(1) if mus is None else jnp.asarray(mus)}
    parts = [out for _, _, out in run(point, tree, grid({"link.channel.loss": losses}))]
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *parts)


def _key_rate_rows(base, link, protocols, analyses_, losses, mus, fixed, options) -> list:
    labels = tuple(analyses_)
    optimized = tuple(mus is not None and not isinstance(analyses_[a], _NO_SIGNAL_INTENSITY) for a in labels)
    faded = _sweep(_point_fn(labels, optimized), link, protocols, analyses_, losses, mus)
    slots = _sweep(_slots_point(labels, optimized, int(options.slot_nodes)), link, protocols, analyses_, losses, mus)
    x_max = float(jnp.max(link.channel.fading.quadrature(_QUADRATURE_NODES)[0]))
    rows = []
    for i, loss in enumerate(losses):
        t_max = x_max * 10.0 ** (-loss / 10.0)  # the largest quadrature node's T before the cap at 1
        for label, opt in zip(labels, optimized):
            out, mu = faded[label]
            out_fixed, mu_fixed = fixed[label]
            rate_slots, mu_slots = slots[label]
            rows.append({
                **base, "kind": "key_rate", "loss_db": float(loss), "analysis": label,
                "key_rate": float(out.rate[i]), "key_rate_fixed": float(out_fixed.rate[i]),
                "key_rate_slots": float(rate_slots[i]),
                "mu": float(mu[i]) if opt else None, "mu_fixed": float(mu_fixed[i]) if opt else None,
                "mu_slots": float(mu_slots[i]) if opt else None, "max_slot_transmittance": t_max,
                "reason": reason_text(out.reason[i]),
            })
    return rows


def _check(link, protocol, analyses_, rytov, losses, options, mus):
    for name, values, rule in (("rytov_variance", rytov, Range("rytov_variance", 0.0, 100.0)),
                               ("loss_db", losses, Range("loss_db", 0.0))):
        bad = rule.error(SimpleNamespace(**{name: values}), "sweep.")
        if bad:
            raise ValidationError(bad)
    validate(options, "fading.")
    validate(options.law("beam_wander", None), "fading.")
    validate(link)
    validate(protocol, "protocol.")
    if not analyses_:
        raise ValidationError("analysis.variants: needs at least one analysis")
    for label, analysis in analyses_.items():
        validate(analysis, f"analysis.variants.{label}.")
        _check_pair(label, analysis, protocol_for(analysis, protocol))
    if mus is not None:
        bad = Range("mu", 0.0, lo_open=True).error(SimpleNamespace(mu=np.asarray(mus, float)), "optimize.")
        if bad:
            raise ValidationError(bad)


def turbulence_fading(key, link: Link, protocol, analyses_: Mapping[str, Any], rytov_variances: Sequence[float],
                      losses_db: Sequence[float], options: FadingOptions | None = None,
                      mu_grid: Sequence[float] | None = None) -> Iterator[Chunk]:
    """Rows of :data:`TURBULENCE_COLUMNS` (see the module docstring), one chunk per law and Rytov
    variance (beam wander: one chunk).

    Args:
        key: JAX PRNG key of the fading draws (one ``fold_in`` per law and Rytov variance).
        link: source and detector of the link (its channel is replaced by a
            :class:`qmc.freespace.channel.FreeSpaceChannel` of each loss and law).
        protocol: decoy BB84, signal first (its signal intensity is searched over ``mu_grid``).
        analyses_: label -> asymptotic analysis (e.g. :class:`qmc.analysis.InfiniteDecoy`).
        rytov_variances: sigma_R^2 of the log-normal and Gamma-Gamma laws.
        losses_db: mean channel losses of the key-rate curves, dB.
        options: :class:`FadingOptions` (laws, beam wander's W, a, sigma, draws, bins).
        mu_grid: signal intensities searched at every loss (None: the configured one).

    Raises:
        ValidationError: bad input (named as the config key), before anything is compiled.
    """
    options = FadingOptions() if options is None else options
    rytov = np.atleast_1d(np.asarray(rytov_variances, dtype=float))
    losses = np.atleast_1d(np.asarray(losses_db, dtype=float))
    analyses_ = dict(analyses_)
    mus = None if mu_grid is None else np.asarray(mu_grid, dtype=float)
    _check(link, protocol, analyses_, rytov, losses, options, mus)
    return _chunks(key, link, protocol, analyses_, rytov, losses, options, mus)


def _chunks(key, link, protocol, analyses_, rytov, losses, options, mus) -> Iterator[Chunk]:
    entries = _entries(options, rytov)
    protocols = {label: protocol_for(a, protocol) for label, a in analyses_.items()}
    labels = tuple(analyses_)
    optimized = tuple(mus is not None and not isinstance(analyses_[a], _NO_SIGNAL_INTENSITY) for a in labels)
    log.info("turbulence_fading: %d laws x Rytov variances, %s draws each; key rate at %d losses x %d analyses",
             len(entries), f"{int(options.n_samples):,}", losses.size, len(labels))
    fixed_link = dataclasses.replace(link, channel=FreeSpaceChannel(float(losses[0]), Fading()))
    fixed = _sweep(_point_fn(labels, optimized), fixed_link, protocols, analyses_, losses, mus)
    for index, (law, r) in enumerate(entries):
        fading = options.law(law, r)
        row, hist = fading_statistics(jax.random.fold_in(key, index), fading, int(options.n_samples),
                                      int(options.n_bins))
        base = {k: row[k] for k in ("law", "rytov_variance", "alpha", "beta", "beam_width_m", "aperture_radius_m",
                                    "wander_sigma_m")}
        faded_link = dataclasses.replace(link, channel=FreeSpaceChannel(float(losses[0]), fading))
        rows = [row] + hist + _key_rate_rows(base, faded_link, protocols, analyses_, losses, mus, fixed, options)
        yield Chunk([{c: r_.get(c) for c in TURBULENCE_COLUMNS} for r_ in rows], index, len(entries))


def _run(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter: ``sweep.rytov_variance``, ``sweep.loss_db``, ``fading.*``, ``optimize.mu``,
    ``analysis.variants``, ``seed``; the source and detector of the configured link."""
    require_exact_engine(spec, "turbulence_fading", "averages the outcome probabilities over the fading law")
    sweep = setting(spec, "sweep", Sweep)
    options = FadingOptions.from_spec(spec.get("fading"))
    mu = optimize_settings(spec).mu
    link = spec.get("link")
    if link is None:
        link = Link(spec["source"], FreeSpaceChannel(), spec["detector"], spec.get("classical"))
    return turbulence_fading(jax.random.key(seed(spec)), link, spec["protocol"], analyses(spec),
                             sweep.axis("rytov_variance"), sweep.axis("loss_db"), options,
                             None if mu is None else mu.grid("optimize.mu"))


register(Study(
    name="turbulence_fading",
    run=_run,
    columns=TURBULENCE_COLUMNS,
    figure="qmc.plots.turbulence:turbulence_fading",
    figure_name="turbulence_fading",
))
