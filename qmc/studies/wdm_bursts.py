"""Study ``wdm_bursty_traffic``: bursty classical traffic, its mean-noise answer against the pulse engine.

The classical channels follow on/off bursts (:class:`qmc.channels.traffic.Bursts`, launch power
while on, ``sweep.duty_cycle`` swept), so the noise of pulses within one burst is shared. For each
(length, duty cycle, analysis) three answers:

* ``mean_noise``: the exact engine with the noise averaged over time (what every i.i.d. engine
  and the optimizer see): the asymptotic rate per pulse, and for a finite-key analysis the key
  length of one session of N = ``engine.n_pulses`` pulses from its expected counts
  (``mean_noise_pooled``: of all S = ``sessions.n_sessions`` sessions' S N pulses);
* ``pulse_pooled``: the pulse engine's counts of the S consecutive sessions pooled into one
  analysis (bursts included as they fall; compare with ``mean_noise_pooled``);
* ``pulse_sessions`` (finite-key analyses): each consecutive session of N pulses analysed on its
  own counts (sessions k N ... (k + 1) N - 1 on the traffic's time axis): the mean, smallest and
  largest key length, and how many sessions gave a key.

Pooled counts average the noise linearly, so they differ from the mean-noise answer only where a
detector saturates (a click probability is concave in the noise). Sessions shorter than the bursts
do differ: a session inside a burst has the burst's noise, one between bursts none, and the finite
key is not linear in the noise.

Figure: :func:`qmc.plots.wdm_bursts.bursty_traffic`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qmc._compile import jit
from qmc.analysis.counts import DecoyCounts
from qmc.analysis.keyrate import reason_text
from qmc.analysis.sessions import session_outcomes
from qmc.channels.raman import traffic_profile, with_profile
from qmc.channels.traffic import Bursts
from qmc.engines import exact
from qmc.engines.pulse import PulseEngine, simulate
from qmc.engines.tally import Tally
from qmc.link import Link, check_noise, has_traffic
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import ConsecutiveSessions, Sweep
from qmc.studies.key_rate import _check_pair
from qmc.studies.spec import analyses, seed, setting
from qmc.validation import Range, ValidationError

__all__ = ["wdm_bursty_traffic", "BURSTY_COLUMNS", "ESTIMATES"]

ESTIMATES = ("mean_noise", "mean_noise_pooled", "pulse_pooled", "pulse_sessions")
BURSTY_COLUMNS = (
    "length_km", "duty_cycle", "burst_s", "analysis", "estimate", "key_rate", "key_rate_bps", "key_length_bits",
    "key_length_min_bits", "key_length_max_bits", "sessions_with_key", "n_sessions", "session_pulses", "qber",
    "reason",
)

log = logging.getLogger("qmc")


def _is_finite(analysis) -> bool:
    return bool(getattr(analysis, "finite", False)) and hasattr(analysis, "rate_from_counts")


@jit
def _mean_noise(analysis, link, protocol, n_pulses):
    """Expected-count answer with the time-averaged noise: per pulse for an asymptotic analysis,
    a session of ``n_pulses`` pulses for a finite-key one."""
    obs = exact.observations(link, protocol)
    if _is_finite(analysis):
        return analysis.rate_from_counts(DecoyCounts.for_pulses(obs, protocol, n_pulses), protocol, link)
    return analysis.key_rate_from_observations(obs, protocol, link)


@jit
def _pooled(analysis, tally, protocol, link):
    return analysis.key_rate_from_observations(tally.observations(), protocol, link)


def _sessions(key, link, protocol, engine: PulseEngine, n_sessions: int) -> Tally:
    """Tallies (n_sessions leading) of consecutive sessions of ``engine.n_pulses`` pulses each."""
    n = jnp.int64(engine.n_pulses)
    out = [simulate(jax.random.fold_in(key, s), link, protocol, n, path=engine.path, chunk=engine.resolved_chunk(),
                    block_pulses=int(engine.block_pulses), max_photons=int(engine.max_photons),
                    methods=None if engine.methods is None else tuple(engine.methods), start_pulse=s * n)
           for s in range(n_sessions)]
    return jax.tree_util.tree_map(lambda *c: jnp.stack(c), *out)


def wdm_bursty_traffic(key, link: Link, protocol, analyses_: Mapping[str, Any], lengths_km: Sequence[float],
                       duty_cycles: Sequence[float], engine: PulseEngine, n_sessions: int) -> Iterator[Chunk]:
    """Rows of :data:`BURSTY_COLUMNS` for every (length, duty cycle, analysis, estimate).

    Args:
        key: JAX PRNG key.
        link: a link whose ``classical`` traffic follows :class:`qmc.channels.traffic.Bursts` (its
            burst length and phase are kept; its duty cycle is replaced by each of ``duty_cycles``).
        protocol: the protocol, not optimized (the same parameters for every estimate).
        analyses_: label -> analysis (observation-based: asymptotic decoy or finite-key).
        lengths_km, duty_cycles: the grid.
        engine: the :class:`qmc.engines.PulseEngine` (``n_pulses`` per session; ``path``).
        n_sessions: consecutive sessions per point.

    Raises:
        ValidationError: bad input, before anything is compiled.
    """
    if not has_traffic(link):
        raise ValidationError("classical: study wdm_bursty_traffic needs classical traffic in the fiber "
                              "(e.g. classical=data_c_band)")
    profile = traffic_profile(link.classical)
    if not isinstance(profile, Bursts):
        raise ValidationError(f"classical.profile: study wdm_bursty_traffic needs bursts "
                              f"(qmc.channels.traffic.Bursts), not {type(profile).__name__}")
    lengths = np.asarray(lengths_km, float)
    duties = np.asarray(duty_cycles, float)
    if lengths.ndim != 1 or lengths.size == 0 or duties.ndim != 1 or duties.size == 0:
        raise ValidationError("sweep.length_km and sweep.duty_cycle: need at least one value each")
    for name, values, check in (("length_km", lengths, Range("v", 0.0)),
                                ("duty_cycle", duties, Range("v", 0.0, 1.0, lo_open=True))):
        bad = [v for v in values if check.error(type("V", (), {"v": float(v)}), "") is not None]
        if bad:
            raise ValidationError(f"sweep.{name} = {bad[0]} is out of range: must be {check.describe()}")
    for label, analysis in analyses_.items():
        if not hasattr(analysis, "key_rate_from_observations") or not getattr(analysis, "uses_observations", True):
            raise ValidationError(f"analysis.variants.{label}: study wdm_bursty_traffic needs an analysis of "
                                  f"observed counts")
        _check_pair(label, analysis, protocol)
    check_noise(link)
    return _chunks(key, link, protocol, dict(analyses_), lengths, duties, engine, int(n_sessions))


def _chunks(key, link, protocol, analyses_, lengths, duties, engine, n_sessions) -> Iterator[Chunk]:
    n = int(engine.n_pulses)
    rate_hz = float(link.source.rep_rate_hz)
    burst_s = float(traffic_profile(link.classical).burst_s)
    total = lengths.size * duties.size
    log.info("wdm_bursty_traffic: %d lengths x %d duty cycles, %d sessions of %s pulses each (%s pulse engine)",
             lengths.size, duties.size, n_sessions, f"{n:,}", engine.path)
    index = 0
    for length in lengths:
        for duty in duties:
            profile = dataclasses.replace(traffic_profile(link.classical), duty_cycle=float(duty))
            at = dataclasses.replace(link, channel=dataclasses.replace(link.channel, length_km=float(length)),
                                     classical=with_profile(link.classical, profile))
            tallies = _sessions(jax.random.fold_in(key, index), at, protocol, engine, n_sessions)
            pooled = jax.tree_util.tree_map(lambda c: jnp.sum(c, axis=0), tallies)
            base = {"length_km": float(length), "duty_cycle": float(duty), "burst_s": burst_s,
                    "n_sessions": n_sessions, "session_pulses": n}
            rows = []
            for label, analysis in analyses_.items():
                finite = _is_finite(analysis)
                mean = _mean_noise(analysis, at, protocol, float(n))
                rows.append(_row(base, label, "mean_noise", mean, rate_hz, n if finite else None))
                if finite:  # the pooled counts' block: all sessions' pulses
                    mean = _mean_noise(analysis, at, protocol, float(n * n_sessions))
                    rows.append(_row(base, label, "mean_noise_pooled", mean, rate_hz, n * n_sessions))
                rows.append(_row(base, label, "pulse_pooled", _pooled(analysis, pooled, protocol, at), rate_hz, None))
                if finite:
                    out = session_outcomes(analysis, protocol, tallies)
                    length_bits = out["key_length"]
                    rows.append({
                        **base, "analysis": label, "estimate": "pulse_sessions",
                        "key_rate": float(length_bits.mean() / n), "key_rate_bps": float(length_bits.mean() / n * rate_hz),
                        "key_length_bits": float(length_bits.mean()), "key_length_min_bits": float(length_bits.min()),
                        "key_length_max_bits": float(length_bits.max()),
                        "sessions_with_key": int(np.sum(length_bits > 0)), "qber": None,
                        "reason": reason_text(int(np.bincount(out["reason"]).argmax())),
                    })
            yield Chunk(rows, index, total)
            index += 1


def _row(base, label, estimate, out, rate_hz, session_pulses) -> dict:
    rate = float(np.nan_to_num(out.rate, nan=0.0))
    qber = getattr(out, "qber", None)
    return {
        **base, "analysis": label, "estimate": estimate, "key_rate": rate, "key_rate_bps": rate * rate_hz,
        "key_length_bits": None if session_pulses is None else math.floor(rate * session_pulses),
        "key_length_min_bits": None, "key_length_max_bits": None, "sessions_with_key": None,
        "qber": None if qber is None else float(qber), "reason": reason_text(out.reason),
    }


def _run(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter: ``sweep.length_km``, ``sweep.duty_cycle``, ``sessions.n_sessions``,
    ``engine`` (pulse), ``analysis.variants``, ``seed``."""
    engine = spec.get("engine")
    if not isinstance(engine, PulseEngine):
        raise ValidationError(f"engine = {getattr(engine, 'name', type(engine).__name__)}: study wdm_bursty_traffic "
                              f"simulates traffic varying in time on the pulse engine (engine=pulse)")
    sweep = setting(spec, "sweep", Sweep)
    sessions = setting(spec, "sessions", ConsecutiveSessions)
    return wdm_bursty_traffic(jax.random.key(seed(spec)), spec["link"], spec["protocol"], analyses(spec),
                              sweep.axis("length_km"), sweep.axis("duty_cycle"), engine, sessions.n_sessions)


register(Study(
    name="wdm_bursty_traffic",
    run=_run,
    columns=BURSTY_COLUMNS,
    figure="qmc.plots.wdm_bursts:bursty_traffic",
    figure_name="bursty_traffic",
))
