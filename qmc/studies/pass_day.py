"""Study ``key_per_day``: the key of every pass of one day of an orbit over a ground station.

The orbit is a two-line element set (``orbit.tle_line1``, ``orbit.tle_line2``, propagated by the
optional ``sgp4``), the station ``station.latitude_deg``, ``station.longitude_deg``,
``station.altitude_m``; :func:`qmc.freespace.tle.timed_passes_in_window` finds every pass above
``satellite.min_elevation_deg`` whose culmination falls in [``orbit.start_jd``,
``orbit.start_jd`` + ``orbit.days``) (``start_jd`` null: the TLE's epoch), sampled every
``satellite.time_step_s`` and cut to ``satellite.window_s``. Each pass becomes a
:class:`qmc.studies.satellite.PassModel` (the link budget of ``satellite``, ``receiver``,
``pointing``, ``atmosphere``; ``satellite.altitude_km`` and ``satellite.culmination_deg`` are not
used: the TLE gives the geometry), and for every analysis of ``analysis.variants`` the protocol is
optimized for each pass's pooled counts (:class:`qmc.analysis.pooled.PooledSlots`), all passes in
one batched :func:`qmc.optimize.maximize` call (padded as
:func:`qmc.studies.pass_elevation.stacked_passes`). ``optimize.enabled=false`` evaluates the
configured protocol. Every slot above the minimum elevation is kept (no cut-off search, unlike
``satellite_pass``). Day and night are not told apart: ``receiver.sky_radiance`` applies to every
pass.

Rows (``kind``): ``pass``, one per pass and analysis: ``pass_index`` (0, 1, ... in time order),
``culmination_jd`` and ``culmination_utc``, ``culmination_deg``, ``duration_s`` (rise to set above
the minimum elevation), ``n_slots``, ``n_pulses``, ranges, losses, ``key_per_pass_bits`` (rate per
pulse x pulses of the pass), the protocol and the analysis' reason; ``summary``, one per analysis:
``key_per_day_bits`` (the sum of its passes' keys), ``n_passes`` and ``days``.
Figure: :func:`qmc.plots.satellite.key_per_day`.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Mapping

import numpy as np

from qmc.analysis.keyrate import reason_text
from qmc.freespace import Satellite, tle
from qmc.studies.pass_elevation import pooled_pass_keys, stacked_passes
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.satellite import PROTOCOL_COLUMNS, check_pooling, components, pass_model
from qmc.studies.settings import OptimizeSettings, OrbitSettings, StationSettings
from qmc.studies.spec import analyses, require_exact_engine, seed, setting
from qmc.validation import ValidationError

__all__ = ["key_per_day", "day_passes", "DAY_COLUMNS"]

log = logging.getLogger("qmc")

DAY_COLUMNS = ("kind", "analysis", "finite", "pass_index", "culmination_jd", "culmination_utc", "culmination_deg",
               "duration_s", "n_slots", "n_pulses", "min_range_km", "max_range_km", "min_loss_db", "max_loss_db",
               "key_per_pass_bits", "key_per_day_bits", "n_passes", "days", "optimized", *PROTOCOL_COLUMNS,
               "reason")


def day_passes(orbit: OrbitSettings, station: StationSettings, satellite: Satellite) -> list:
    """The :class:`~qmc.freespace.tle.TimedPass` es of the window (module docstring), each cut to
    ``satellite.window_s``; a TLE that sgp4 cannot read or propagate is one line naming the key."""
    try:
        found = tle.timed_passes_in_window(
            orbit.tle_line1, orbit.tle_line2, station.latitude_deg, station.longitude_deg, station.altitude_m,
            min_elevation_deg=float(satellite.min_elevation_deg), time_step_s=float(satellite.time_step_s),
            start_jd=orbit.start_jd, days=float(orbit.days), search_step_s=float(orbit.search_step_s))
    except ValidationError as err:
        if "TLE" not in str(err):
            raise
        raise ValidationError(f"orbit.tle_line1, orbit.tle_line2: {err}") from None
    except ValueError as err:  # sgp4 could not propagate, or a pass that does not set
        raise ValidationError(f"orbit.tle_line1, orbit.tle_line2: {err}") from None
    window = None if satellite.window_s is None else float(satellite.window_s)
    return [p._replace(the_pass=p.the_pass.within(window)) for p in found]


def key_per_day(source, detector, protocol, analyses_: Mapping[str, Any], satellite: Satellite, receiver, pointing,
                atmosphere, orbit: OrbitSettings, station: StationSettings,
                optimize: OptimizeSettings | None = None, seed_: int = 0) -> Iterator[Chunk]:
    """Rows of :data:`DAY_COLUMNS`, one chunk per analysis (module docstring).

    Raises:
        ValidationError: bad input (a loss table, a TLE sgp4 cannot read, an analysis that cannot
            pool counts), before anything is compiled; the pass search (sgp4) and the passes' links
            are made when the first chunk is asked for.
    """
    optimize = OptimizeSettings() if optimize is None else optimize
    if satellite.loss_table is not None:
        raise ValidationError("satellite.loss_table: study key_per_day computes the passes of a TLE (a table is one "
                              "pass: use study satellite_pass)")
    check_pooling(analyses_, protocol, "key_per_day")
    _read_tle(orbit)
    make = lambda p: pass_model(source, detector, satellite, receiver, pointing, atmosphere, the_pass=p)  # noqa: E731
    return _chunks(protocol, dict(analyses_), lambda: day_passes(orbit, station, satellite), make,
                   float(orbit.days), optimize, int(seed_))


def _read_tle(orbit: OrbitSettings) -> None:
    """Refuse a TLE that sgp4 cannot read, naming the keys; without sgp4 the study says how to
    install it when it runs (so that the experiment composes and validates without it)."""
    try:
        api = tle.require_sgp4()
    except ImportError:
        return
    try:
        api.Satrec.twoline2rv(orbit.tle_line1.strip(), orbit.tle_line2.strip())
    except (ValueError, IndexError) as err:
        raise ValidationError(f"orbit.tle_line1, orbit.tle_line2: sgp4 cannot read the TLE ({err})") from None


def _chunks(protocol, analyses_, find_passes, make_model, days, optimize, seed_) -> Iterator[Chunk]:
    passes = [p for p in find_passes() if len(p.the_pass) > 0]  # the pass search runs with the study
    models = [make_model(p.the_pass) for p in passes]
    empty = dict.fromkeys(DAY_COLUMNS)
    batch = stacked_passes(models) if models else None
    n_pulses = np.asarray(batch.slot_pulses).sum(axis=1) if models else np.zeros(0)
    log.info("key_per_day: %d passes in %g days, %d analyses", len(models), days, len(analyses_))
    for index, (label, analysis) in enumerate(analyses_.items()):
        finite = bool(getattr(analysis, "finite", False))
        rows = []
        if models:
            protocols, out = pooled_pass_keys(analysis, batch, protocol, optimize, seed_)
            params = protocols.parameters()
            rate = np.nan_to_num(np.asarray(out.rate), nan=0.0)
            for i, (p, m) in enumerate(zip(passes, models)):
                rows.append({
                    **empty, "kind": "pass", "analysis": label, "finite": finite, "pass_index": i,
                    "culmination_jd": float(p.culmination_jd), "culmination_utc": tle.jd_to_utc(p.culmination_jd),
                    "culmination_deg": float(np.max(m.elevation_deg)),
                    "duration_s": float((p.set_jd - p.rise_jd) * tle.SECONDS_PER_DAY),
                    "n_slots": int(m.time_s.size), "n_pulses": float(n_pulses[i]),
                    "min_range_km": float(np.min(m.range_km)), "max_range_km": float(np.max(m.range_km)),
                    "min_loss_db": float(np.min(m.loss_db)), "max_loss_db": float(np.max(m.loss_db)),
                    "key_per_pass_bits": float(rate[i] * n_pulses[i]), "optimized": bool(optimize.enabled),
                    **{k: (float(np.asarray(params[k])[i]) if k in params else None) for k in PROTOCOL_COLUMNS},
                    "reason": reason_text(int(np.asarray(out.reason)[i])),
                })
        keys = [r["key_per_pass_bits"] for r in rows]
        rows.append({**empty, "kind": "summary", "analysis": label, "finite": finite,
                     "key_per_day_bits": float(np.sum(keys)) if keys else 0.0, "n_passes": len(models), "days": days,
                     "n_pulses": float(np.sum(n_pulses)), "optimized": bool(optimize.enabled),
                     "reason": f"{sum(k > 0 for k in keys)} of {len(models)} passes gave a key"})
        yield Chunk(rows, index, len(analyses_))


def _run(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter: ``source``, ``detector``, ``protocol``, ``analysis.variants``, the
    free-space groups, ``orbit``, ``station``, ``optimize``, ``seed``."""
    require_exact_engine(spec, "key_per_day", "pools the exact engine's expected counts")
    satellite, receiver, pointing, atmosphere = components(spec)
    return key_per_day(spec["source"], spec["detector"], spec["protocol"], analyses(spec), satellite, receiver,
                       pointing, atmosphere, setting(spec, "orbit", OrbitSettings),
                       setting(spec, "station", StationSettings), setting(spec, "optimize", OptimizeSettings),
                       seed(spec))


register(Study(name="key_per_day", run=_run, columns=DAY_COLUMNS, figure="qmc.plots.satellite:key_per_day",
               figure_name="key_per_day",
               no_figure=lambda rows: "no pass in the window" if not any(r.get("kind") == "pass" for r in rows)
               else None))
