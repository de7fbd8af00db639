"""Study ``pass_key_vs_elevation``: the key of one pass versus its culmination elevation.

For every culmination elevation of ``sweep.culmination_deg`` the circular-orbit pass of
``satellite`` (above ``satellite.min_elevation_deg``, within ``satellite.window_s``) is built as in
:mod:`qmc.studies.satellite`; for every analysis of ``analysis.variants`` (finite-key, e.g. Lim et
al. 2014, against its asymptotic limit) the protocol is optimized for the pooled counts of the
whole pass (:class:`qmc.analysis.pooled.PooledSlots` with :func:`qmc.optimize.maximize`), all
passes in one batched call: the passes are padded to a common number of slots (padding slots send
no pulses) and stacked on a leading batch axis (``maximize(batched=True)``).
``optimize.enabled=false`` evaluates the configured protocol instead.

Rows: ``culmination_deg``, ``analysis``, ``key_per_pass_bits`` (rate per pulse x pulses of the
pass), the pass's length, slots, ranges and losses, the protocol and the analysis' reason.
Figure: :func:`qmc.plots.satellite.pass_key_vs_elevation`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qmc.analysis.keyrate import reason_text
from qmc.analysis.pooled import PooledSlots
from qmc.freespace import Satellite
from qmc.freespace.pass_link import PassLink
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.satellite import PROTOCOL_COLUMNS, check_pooling, components, pass_model
from qmc.studies.settings import OptimizeSettings, Sweep
from qmc.studies.spec import analyses, require_exact_engine, seed, setting
from qmc.validation import ValidationError

__all__ = ["pass_key_vs_elevation", "stacked_passes", "ELEVATION_COLUMNS"]

log = logging.getLogger("qmc")

ELEVATION_COLUMNS = ("culmination_deg", "analysis", "finite", "key_per_pass_bits", "pass_s", "n_slots", "n_pulses",
                     "min_range_km", "max_range_km", "min_loss_db", "max_loss_db", "optimized", *PROTOCOL_COLUMNS,
                     "reason")


def _pad(x, size: int):
    """``x`` padded along its first (slot) axis to ``size`` by repeating its last slot."""
    x = np.asarray(x)
    return np.concatenate([x, np.repeat(x[-1:], size - x.shape[0], axis=0)]) if x.shape[0] < size else x


def stacked_passes(models: Sequence[Any]) -> PassLink:
    """The passes of ``models`` (:class:`qmc.studies.satellite.PassModel`) as one PassLink with a
    leading batch axis P, padded to the most slots (padding slots send no pulses)."""
    size = max(m.time_s.size for m in models)
    links = [jax.tree_util.tree_map(lambda x: _pad(x, size), m.link.links) for m in models]
    pulses = [np.concatenate([np.asarray(m.link.slot_pulses), np.zeros(size - m.time_s.size)]) for m in models]
    return PassLink(jax.tree_util.tree_map(lambda *x: jnp.stack(x), *links), jnp.stack(pulses))


@jax.jit
def _evaluate(analysis, batch, protocol):
    return jax.vmap(lambda pl: analysis.key_rate(pl, protocol))(batch)


def pooled_pass_keys(analysis, batch: PassLink, protocol, optimize: OptimizeSettings, seed_: int):
    """``(protocols, rates)`` of ``PooledSlots(analysis)`` for each pass of ``batch`` (passes
    stacked on a leading axis, :func:`stacked_passes`): the protocol optimized per pass
    (:func:`qmc.optimize.maximize`, ``batched=True``) when ``optimize.enabled``, else the
    configured one (broadcast over the passes)."""
    from qmc.optimize import maximize

    pooled = PooledSlots(analysis)
    if optimize.enabled:
        opt = maximize(pooled, batch, protocol, batched=True, validate=False, n_starts=int(optimize.n_starts),
                       seed=seed_, solver=optimize.solver, loop=optimize.loop, **dict(optimize.solver_options or {}))
        return opt.protocol, opt.rate
    n = int(np.shape(batch.slot_pulses)[0])
    protocols = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n,) + jnp.shape(x)), protocol)
    return protocols, _evaluate(pooled, batch, protocol)


def pass_key_vs_elevation(source, detector, protocol, analyses_: Mapping[str, Any], satellite: Satellite, receiver,
                          pointing, atmosphere, culminations_deg: Sequence[float],
                          optimize: OptimizeSettings | None = None, seed_: int = 0) -> Iterator[Chunk]:
    """Rows of :data:`ELEVATION_COLUMNS`, one chunk per analysis (module docstring).

    Raises:
        ValidationError: bad input (a loss table, a culmination below the minimum elevation, an
            analysis that cannot pool counts), before anything is compiled.
    """
    optimize = OptimizeSettings() if optimize is None else optimize
    if satellite.loss_table is not None:
        raise ValidationError("satellite.loss_table: study pass_key_vs_elevation computes the passes of a circular "
                              "orbit (a table is one pass: use study satellite_pass)")
    culminations = np.asarray(culminations_deg, float).ravel()
    min_el = float(satellite.min_elevation_deg)
    if culminations.size == 0:
        raise ValidationError("sweep.culmination_deg: needs at least one culmination elevation")
    bad = [c for c in culminations if not min_el <= c <= 90.0]
    if bad:
        raise ValidationError(f"sweep.culmination_deg = {bad[0]:g} is out of range: must be in "
                              f"[satellite.min_elevation_deg, 90] = [{min_el:g}, 90]")
    check_pooling(analyses_, protocol, "pass_key_vs_elevation")
    parts = (source, detector, satellite, receiver, pointing, atmosphere)
    return _chunks(protocol, dict(analyses_), culminations, parts, optimize, int(seed_))


def _chunks(protocol, analyses_, culminations, parts, optimize, seed_) -> Iterator[Chunk]:
    source, detector, satellite, receiver, pointing, atmosphere = parts
    # The passes are computed when the run starts, not while the config is checked.
    models = [pass_model(source, detector, dataclasses.replace(satellite, culmination_deg=float(c)), receiver,
                         pointing, atmosphere) for c in culminations]
    batch = stacked_passes(models)
    n_pulses = np.asarray(batch.slot_pulses).sum(axis=1)
    log.info("pass_key_vs_elevation: %d passes (up to %d slots), %d analyses", culminations.size,
             int(batch.slot_pulses.shape[1]), len(analyses_))
    for index, (label, analysis) in enumerate(analyses_.items()):
        protocols, out = pooled_pass_keys(analysis, batch, protocol, optimize, seed_)
        params = protocols.parameters()
        rate = np.nan_to_num(np.asarray(out.rate), nan=0.0)
        rows = []
        for p, (c, m) in enumerate(zip(culminations, models)):
            ranges = m.range_km
            rows.append({
                "culmination_deg": float(c), "analysis": label, "finite": bool(getattr(analysis, "finite", False)),
                "key_per_pass_bits": float(rate[p] * n_pulses[p]), "pass_s": float(np.sum(m.slot_s)),
                "n_slots": int(m.time_s.size), "n_pulses": float(n_pulses[p]),
                "min_range_km": float(np.min(ranges)), "max_range_km": float(np.max(ranges)),
                "min_loss_db": float(np.min(m.loss_db)), "max_loss_db": float(np.max(m.loss_db)),
                "optimized": bool(optimize.enabled),
                **{k: (float(np.asarray(params[k])[p]) if k in params else None) for k in PROTOCOL_COLUMNS},
                "reason": reason_text(int(np.asarray(out.reason)[p])),
            })
        yield Chunk(rows, index, len(analyses_))


def _run(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter: ``source``, ``detector``, ``protocol``, ``analysis.variants``, the
    free-space groups, ``sweep.culmination_deg``, ``optimize``, ``seed``."""
    require_exact_engine(spec, "pass_key_vs_elevation", "pools the exact engine's expected counts")
    satellite, receiver, pointing, atmosphere = components(spec)
    return pass_key_vs_elevation(spec["source"], spec["detector"], spec["protocol"], analyses(spec), satellite,
                                 receiver, pointing, atmosphere, setting(spec, "sweep", Sweep).axis("culmination_deg"),
                                 setting(spec, "optimize", OptimizeSettings), seed(spec))


register(Study(name="pass_key_vs_elevation", run=_run, columns=ELEVATION_COLUMNS,
               figure="qmc.plots.satellite:pass_key_vs_elevation", figure_name="pass_key_vs_elevation",
               no_figure=lambda rows: "one culmination elevation: no curve to draw"
               if len({r["culmination_deg"] for r in rows}) < 2 else None))
