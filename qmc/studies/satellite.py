"""Study ``satellite_pass``: the key of one satellite pass, slot by slot and pooled.

A decoy-BB84 downlink from a satellite in a circular orbit (or a pass given as a table,
``satellite.loss_table``) to a ground station: per time slot the pass geometry, the mean channel
loss of the link budget (:mod:`qmc.freespace.budget`), the plane-wave turbulence of the slant
path (:mod:`qmc.freespace.turbulence`) and the sky background make one :class:`qmc.Link`
(:func:`qmc.freespace.pass_link.pass_link`); the fading law is ``atmosphere.turbulence``.

Rows (``kind``):

* ``slot``: one per slot of the pass above ``satellite.min_elevation_deg``: ``time_s``,
  ``elevation_deg``, ``range_km`` (empty for a table), ``loss_db`` (the mean channel loss from the
  transmitter to the receiver aperture's output, detector efficiency apart; on an uplink the
  turbulent beam spread is in it when turbulence is on, on a downlink fading has mean 1 and leaves
  it), ``rytov_variance`` and ``fried_parameter_m`` (plane-wave downlink values at the slot's
  zenith angle), and with the *headline protocol* (the one optimized for the pooled pass by the
  first analysis of ``analysis.variants``) the exact engine's ``qber`` (key basis, all
  intensities), ``sifted_rate_bps`` (detections per second in matching bases, all intensities)
  and ``key_rate_bps``: the slot's asymptotic rate (the headline analysis without finite-size
  terms: :class:`~qmc.analysis.AsymptoticTwoDecoy` or :class:`~qmc.analysis.AsymptoticOneDecoy`
  with its f_EC) times the repetition rate; ``in_cutoff`` says whether the slot is above the
  headline's chosen elevation cut-off.
* ``summary``: per analysis label, ``estimate`` =
  ``pooled`` (:class:`qmc.analysis.pooled.PooledSlots`: the expected counts of the kept slots
  pooled into one analysis; the protocol optimized for the whole pass, and the elevation cut-off
  ``cutoff_deg`` chosen among ``sweep.min_elevation_deg`` to maximize the key of the pass),
  ``mean_loss`` (the naive answer: the same protocol and cut-off, fading off, every slot at its
  mean loss) and ``monte_carlo_median`` (``mc.n_passes`` passes of the block engine with the
  fading drawn per slot, :func:`qmc.engines.slots.pass_tallies_block`, each pass's counts
  through the same analysis: median, mean, standard deviation and the 5/25/75/95 % quantiles).
  ``key_per_pass_bits`` is rate per pulse x pulses of the kept slots (not floored).

``optimize.enabled=false`` evaluates the configured protocol at ``satellite.min_elevation_deg``
(no parameter or cut-off search). Figure: :func:`qmc.plots.satellite.satellite_pass`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qmc.analysis import AsymptoticOneDecoy, AsymptoticTwoDecoy
from qmc.analysis.counts import DecoyCounts
from qmc.analysis.keyrate import reason_text
from qmc.analysis.pooled import PooledSlots
from qmc.engines import exact
from qmc.engines.slots import pass_tallies_block
from qmc.freespace import Atmosphere, Pointing, Receiver, Satellite, turbulence
from qmc.freespace.budget import beam_radius_m
from qmc.freespace.fading import Fading
from qmc.freespace.pass_link import PassLink, pass_link
from qmc.freespace.satellite import pass_loss_db, satellite_pass as make_pass
from qmc.studies.key_rate import _check_pair
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import OptimizeSettings, PassSettings, Sweep
from qmc.studies.spec import analyses, require_exact_engine, seed, setting
from qmc.validation import ValidationError

__all__ = ["PassModel", "pass_model", "satellite_pass", "optimize_pass", "SLOT_COLUMNS", "SUMMARY_COLUMNS",
           "SATELLITE_COLUMNS", "ESTIMATES", "QUANTILES", "components"]

log = logging.getLogger("qmc")

ESTIMATES = ("pooled", "mean_loss", "monte_carlo_median")
QUANTILES = (0.05, 0.25, 0.75, 0.95)
MAX_ZENITH_DEG = 89.5  # turbulence at the horizon (sec -> inf) is evaluated here instead
PROTOCOL_COLUMNS = ("mu1", "mu2", "mu3", "p_mu1", "p_mu2", "p_mu3", "p_z")
SLOT_COLUMNS = ("time_s", "elevation_deg", "range_km", "slot_s", "loss_db", "rytov_variance", "fried_parameter_m",
                "qber", "sifted_rate_bps", "key_rate_bps", "in_cutoff")
SUMMARY_COLUMNS = ("analysis", "estimate", "key_per_pass_bits", "key_per_pass_mean", "key_per_pass_std",
                   *(f"key_per_pass_q{round(100 * q):02d}" for q in QUANTILES), "n_passes", "cutoff_deg", "pass_s",
                   "n_pulses", "optimized", *PROTOCOL_COLUMNS, "reason")
SATELLITE_COLUMNS = ("kind", *SLOT_COLUMNS, *SUMMARY_COLUMNS)


@dataclasses.dataclass(frozen=True)
class PassModel:
    """One pass as the study sees it: the pass's slots (numpy, concrete) and its links.

    Attributes:
        time_s, elevation_deg, range_km (None for a table), slot_s, loss_db, rytov_variance,
        fried_parameter_m: per slot (S,).
        link: the :class:`~qmc.freespace.pass_link.PassLink` with the configured fading.
        mean_link: the same slots without fading (each at its mean loss).
    """

    time_s: np.ndarray
    elevation_deg: np.ndarray
    range_km: Any
    slot_s: np.ndarray
    loss_db: np.ndarray
    rytov_variance: np.ndarray
    fried_parameter_m: np.ndarray
    link: PassLink
    mean_link: PassLink


def components(spec: Mapping[str, Any]) -> tuple:
    """``satellite``, ``receiver``, ``pointing``, ``atmosphere`` of a built config (defaults where
    a group is missing), each checked to be the free-space dataclass its key names."""
    out = []
    for name, cls in (("satellite", Satellite), ("receiver", Receiver), ("pointing", Pointing),
                      ("atmosphere", Atmosphere)):
        value = spec.get(name)
        if value is None:
            value = cls()
        if not isinstance(value, cls):
            raise ValidationError(f"{name}: expected qmc.freespace.{cls.__name__} (_target_: qmc.freespace."
                                  f"{cls.__name__}), got {type(value).__name__}")
        out.append(value)
    return tuple(out)


def pass_model(source, detector, satellite: Satellite, receiver: Receiver, pointing: Pointing,
               atmosphere: Atmosphere, the_pass=None) -> PassModel:
    """The slots and links of the pass ``satellite`` describes (or of ``the_pass`` when given).

    Turbulence: the plane-wave Rytov variance and Fried parameter of the slant path at each slot's
    zenith angle (capped at :data:`MAX_ZENITH_DEG`) from the Hufnagel-Valley profile of
    ``atmosphere``; with ``beam_wander`` the wander is the pointing jitter at the receiver
    (sigma = jitter x range, W = the beam's 1/e^2 radius there, a = aperture / 2), which needs the
    range (a computed pass).
    """
    the_pass = make_pass(satellite) if the_pass is None else the_pass
    if len(the_pass) == 0:
        raise ValidationError("satellite.min_elevation_deg: the pass has no slot above the minimum elevation "
                              "(or within satellite.window_s)")
    wavelength = float(source.wavelength_nm)
    elevation = np.asarray(the_pass.elevation_deg, float)
    zenith = np.minimum(90.0 - elevation, MAX_ZENITH_DEG)
    profile = dict(ground_cn2=atmosphere.ground_cn2, wind_speed_m_s=atmosphere.wind_speed_m_s,
                   station_altitude_m=atmosphere.station_altitude_m)
    rytov = np.asarray(turbulence.rytov_variance_plane(wavelength, zenith, **profile), float)
    r0 = np.asarray(turbulence.fried_parameter_m(wavelength, zenith, **profile), float)
    law = atmosphere.turbulence
    loss = np.asarray(pass_loss_db(the_pass, satellite, receiver, pointing, atmosphere, wavelength,
                                   r0 if law != "none" else math.inf), float)
    sky = receiver.background_photons_per_gate(wavelength)
    slot_s = np.asarray(the_pass.slot_s, float)
    link = pass_link(source, detector, loss, slot_s, Fading(law), rytov if law != "none" else 0.0, sky)
    if law == "beam_wander":
        if the_pass.range_km is None:
            raise ValidationError("atmosphere.turbulence = beam_wander: needs the slant range of a computed pass "
                                  "(a satellite.loss_table has none); use lognormal or gamma_gamma")
        range_m = np.asarray(the_pass.range_km, float) * 1e3
        width = np.asarray(beam_radius_m(np.asarray(the_pass.range_km), satellite.divergence_urad), float)
        fading = dataclasses.replace(link.links.channel.fading, beam_width_m=jnp.asarray(width),
                                     aperture_radius_m=jnp.full(width.shape, 0.5 * float(receiver.aperture_m)),
                                     wander_sigma_m=jnp.asarray(float(pointing.jitter_urad) * 1e-6 * range_m))
        channel = dataclasses.replace(link.links.channel, fading=fading)
        link = dataclasses.replace(link, links=dataclasses.replace(link.links, channel=channel))
    mean_link = pass_link(source, detector, loss, slot_s, Fading("none"), 0.0, sky)
    return PassModel(np.asarray(the_pass.time_s, float), elevation,
                     None if the_pass.range_km is None else np.asarray(the_pass.range_km, float), slot_s, loss,
                     rytov, r0, link, mean_link)


def _stack(pass_link_: PassLink, keeps: np.ndarray) -> PassLink:
    """The pass once per row of ``keeps`` (C, S): leaves with a leading axis C, the slots outside
    each row's cut sending no pulses."""
    links = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (keeps.shape[0],) + jnp.shape(x)), pass_link_.links)
    pulses = jnp.where(jnp.asarray(keeps), pass_link_.slot_pulses[None, :], 0.0)
    return PassLink(links, pulses)


def check_pooling(analyses_: Mapping[str, Any], protocol, study: str) -> None:
    """Refuse an analysis that cannot pool a pass's counts (the pass studies need one of
    :mod:`qmc.analysis.finite`) or that does not fit the protocol, named by its config key.

    Raises:
        ValidationError: the first such analysis.
    """
    for label, analysis in analyses_.items():
        if not hasattr(analysis, "rate_from_counts"):
            raise ValidationError(f"analysis.variants.{label}: study {study} pools counts: it needs an analysis of "
                                  "qmc.analysis.finite (finite_lim2014, finite_rusca2018 or their asymptotic limits)")
        _check_pair(label, analysis, protocol)


@jax.jit
def _evaluate(analysis, pass_link_, protocol):
    return analysis.key_rate(pass_link_, protocol)


def optimize_pass(analysis, model: PassModel, protocol, cutoffs: Sequence[float], settings: OptimizeSettings,
                  seed_: int = 0):
    """The protocol and cut-off that maximize the pooled key of the pass.

    Returns:
        ``(protocol, cutoff_deg, rate)``: with ``settings.enabled`` false the configured protocol at the
        first cut-off; else one :func:`qmc.optimize.maximize` of ``PooledSlots(analysis)`` per cut-off,
        batched over the cut-offs (``batched=True``), and the cut-off of the largest key.
    """
    from qmc.optimize import maximize

    pooled = PooledSlots(analysis)
    cutoffs = np.asarray(cutoffs, float)
    if not settings.enabled:
        keep = model.elevation_deg >= cutoffs[0]
        return protocol, float(cutoffs[0]), _evaluate(pooled, model.link.masked(jnp.asarray(keep)), protocol)
    keeps = model.elevation_deg[None, :] >= cutoffs[:, None]
    batch = _stack(model.link, keeps)
    opt = maximize(pooled, batch, protocol, batched=True, validate=False, n_starts=int(settings.n_starts),
                   seed=int(seed_), solver=settings.solver, loop=settings.loop,
                   **dict(settings.solver_options or {}))
    keys = np.asarray(opt.rate.rate) * np.asarray(batch.slot_pulses).sum(axis=1)
    best = int(np.argmax(keys))
    pick = lambda x: x[best]  # noqa: E731
    return (jax.tree_util.tree_map(pick, opt.protocol), float(cutoffs[best]),
            jax.tree_util.tree_map(pick, opt.rate))


def _asymptotic(analysis):
    """The headline analysis without finite-size terms (the per-slot rate)."""
    f_ec = getattr(analysis, "f_ec", 1.16)
    if getattr(analysis, "n_intensities", 3) == 2:
        return AsymptoticOneDecoy(f_ec=f_ec)
    return AsymptoticTwoDecoy(f_ec=f_ec)


@jax.jit
def _per_slot(asymptotic, links, protocol):
    def one(link):
        counts = DecoyCounts.per_pulse(exact.observations(link, protocol), protocol)
        rate = asymptotic.rate_from_counts(counts, protocol).rate
        det, err = counts.detections, counts.errors
        qber = jnp.sum(err[:, 0]) / jnp.maximum(jnp.sum(det[:, 0]), 1e-300)
        return jnp.sum(det), qber, jnp.nan_to_num(rate, nan=0.0)

    return jax.vmap(one)(links)


@jax.jit
def _mc_rates(analysis, tallies, protocol):
    return jax.vmap(lambda t: analysis.key_rate_from_observations(t.observations(), protocol).rate)(tallies)


def _protocol_cells(protocol) -> dict:
    params = protocol.parameters()
    return {c: (float(params[c]) if c in params else None) for c in PROTOCOL_COLUMNS}


def _empty(columns) -> dict:
    return {c: None for c in columns}


def satellite_pass(key, source, detector, protocol, analyses_: Mapping[str, Any], satellite: Satellite,
                   receiver: Receiver, pointing: Pointing, atmosphere: Atmosphere, *,
                   cutoffs: Sequence[float] | None = None, n_passes: int = 200,
                   optimize: OptimizeSettings | None = None) -> Iterator[Chunk]:
    """Rows of :data:`SATELLITE_COLUMNS` (module docstring); one chunk per analysis, the slot rows
    with the first.

    Args:
        key: JAX PRNG key of the Monte Carlo passes.
        source, detector: Alice's source (``rep_rate_hz``, ``wavelength_nm``) and Bob's detectors.
        protocol: the starting (or, ``optimize.enabled=false``, the evaluated) protocol.
        analyses_: label -> finite-key or asymptotic analysis of :mod:`qmc.analysis.finite`.
        satellite, receiver, pointing, atmosphere: the free-space components.
        cutoffs: elevation cut-offs (deg) searched for the pooled key (None: the minimum elevation only);
            each must be at least ``satellite.min_elevation_deg``.
        n_passes: Monte Carlo passes per analysis.
        optimize: :class:`~qmc.studies.settings.OptimizeSettings` (``enabled``, ``n_starts``, ``solver``, ``loop``).

    Raises:
        ValidationError: bad input, before anything is compiled.
    """
    optimize = OptimizeSettings() if optimize is None else optimize
    min_el = float(satellite.min_elevation_deg)
    cutoffs = np.asarray([min_el] if cutoffs is None else cutoffs, float).ravel()
    if cutoffs.size == 0:
        raise ValidationError("sweep.min_elevation_deg: needs at least one elevation cut-off")
    bad = [c for c in cutoffs if not min_el <= c <= 90.0]
    if bad:
        raise ValidationError(f"sweep.min_elevation_deg = {bad[0]:g} is out of range: an elevation cut-off must be in "
                              f"[satellite.min_elevation_deg, 90] = [{min_el:g}, 90]")
    if not optimize.enabled:
        cutoffs = np.asarray([min_el])
    if int(n_passes) < 2:
        raise ValidationError(f"mc.n_passes = {n_passes} is out of range: must be a whole number >= 2")
    check_pooling(analyses_, protocol, "satellite_pass")
    model = pass_model(source, detector, satellite, receiver, pointing, atmosphere)
    return _chunks(key, source, protocol, dict(analyses_), model, cutoffs, int(n_passes), optimize)


def _chunks(key, source, protocol, analyses_, model: PassModel, cutoffs, n_passes, optimize) -> Iterator[Chunk]:
    rep = float(source.rep_rate_hz)
    log.info("satellite_pass: %d slots, %d analyses, %d cut-offs, %d Monte Carlo passes", model.time_s.size,
             len(analyses_), cutoffs.size, n_passes)
    for index, (label, analysis) in enumerate(analyses_.items()):
        best, cutoff, out = optimize_pass(analysis, model, protocol, cutoffs, optimize, 0)
        keep = jnp.asarray(model.elevation_deg >= cutoff)
        link = model.link.masked(keep)
        n_pulses = float(np.sum(np.asarray(link.slot_pulses)))
        base = {**_empty(SATELLITE_COLUMNS), "kind": "summary", "analysis": label, "cutoff_deg": cutoff,
                "pass_s": float(np.sum(model.slot_s[np.asarray(keep)])), "n_pulses": n_pulses,
                "optimized": bool(optimize.enabled), **_protocol_cells(best)}
        rows = []
        if index == 0:
            rows += _slot_rows(model, analysis, best, np.asarray(keep), rep)
        rate = float(np.nan_to_num(np.asarray(out.rate), nan=0.0))
        rows.append({**base, "estimate": "pooled", "key_per_pass_bits": rate * n_pulses,
                     "reason": reason_text(out.reason)})
        mean = _evaluate(PooledSlots(analysis), model.mean_link.masked(keep), best)
        rows.append({**base, "estimate": "mean_loss",
                     "key_per_pass_bits": float(np.nan_to_num(np.asarray(mean.rate), nan=0.0)) * n_pulses,
                     "reason": reason_text(mean.reason)})
        tallies = pass_tallies_block(key, link, best, jnp.arange(n_passes))
        keys = np.nan_to_num(np.asarray(_mc_rates(analysis, tallies, best)), nan=0.0) * n_pulses
        rows.append({**base, "estimate": "monte_carlo_median", "key_per_pass_bits": float(np.median(keys)),
                     "key_per_pass_mean": float(keys.mean()), "key_per_pass_std": float(keys.std(ddof=1)),
                     **{f"key_per_pass_q{round(100 * q):02d}": float(np.quantile(keys, q)) for q in QUANTILES},
                     "n_passes": n_passes, "reason": f"{int(np.sum(keys > 0))} of {n_passes} passes gave a key"})
        yield Chunk(rows, index, len(analyses_))


def _slot_rows(model: PassModel, analysis, protocol, keep, rep) -> list:
    sifted, qber, rate = (np.asarray(x) for x in _per_slot(_asymptotic(analysis), model.link.links, protocol))
    rows = []
    for s in range(model.time_s.size):
        rows.append({**_empty(SATELLITE_COLUMNS), "kind": "slot", "time_s": float(model.time_s[s]),
                     "elevation_deg": float(model.elevation_deg[s]),
                     "range_km": None if model.range_km is None else float(model.range_km[s]),
                     "slot_s": float(model.slot_s[s]), "loss_db": float(model.loss_db[s]),
                     "rytov_variance": float(model.rytov_variance[s]),
                     "fried_parameter_m": float(model.fried_parameter_m[s]), "qber": float(qber[s]),
                     "sifted_rate_bps": float(sifted[s]) * rep, "key_rate_bps": float(rate[s]) * rep,
                     "in_cutoff": bool(keep[s])})
    return rows


def _run(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter: ``source``, ``detector``, ``protocol``, ``analysis.variants``,
    ``satellite``, ``receiver``, ``pointing``, ``atmosphere``, ``sweep.min_elevation_deg`` (the
    cut-offs; optional), ``mc.n_passes``, ``optimize``, ``seed``."""
    require_exact_engine(spec, "satellite_pass", "pools the exact engine's expected counts (the Monte Carlo "
                                                 "passes use the block engine per slot)")
    satellite, receiver, pointing, atmosphere = components(spec)
    sweep = setting(spec, "sweep", Sweep)
    cutoffs = None if sweep.min_elevation_deg is None else sweep.axis("min_elevation_deg")
    return satellite_pass(jax.random.key(seed(spec)), spec["source"], spec["detector"], spec["protocol"],
                          analyses(spec), satellite, receiver, pointing, atmosphere, cutoffs=cutoffs,
                          n_passes=setting(spec, "mc", PassSettings).n_passes,
                          optimize=setting(spec, "optimize", OptimizeSettings))


register(Study(name="satellite_pass", run=_run, columns=SATELLITE_COLUMNS,
               figure="qmc.plots.satellite:satellite_pass", figure_name="satellite_pass"))
