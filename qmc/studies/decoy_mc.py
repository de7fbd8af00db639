"""Study ``decoy_bb84_mc``: decoy-state BB84 over the GYS link by the exact, block and pulse engines.

The rows compare, at each fiber length, the observed gain and QBER of every intensity (matched Z
basis, the key basis: ``Observations.gain[k, 0]``) and the vacuum + weak decoy key rate computed
from the Monte Carlo counts (with its delta-method interval) against the exact values.
"""

from __future__ import annotations

import time
from typing import Sequence

import jax
import numpy as np

from qmc._pytree import replace_path
from qmc.analysis.asymptotic import VacuumWeak
from qmc.analysis.keyrate import reason_text
from qmc.engines import exact
from qmc.engines.block import BlockEngine
from qmc.engines.pulse import PulseEngine
from qmc.link import Link
from qmc.presets import decoy_protocol, gys_link
from qmc.protocols import DecoyBB84
from qmc.studies.plan import wants
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import ENGINES, EngineComparisonSettings
from qmc.studies.spec import analyses, seed, setting, sweep_axis
from qmc.validation import ValidationError, validate

__all__ = ["decoy_bb84_mc_rows", "DEFAULT_N_PULSES", "ENGINES", "MC_COLUMNS"]

# 1e8 pulses: the signal gain at 100 km (Q ~ 1.8e-4, 20 % of pulses are Z-matched signals) to
# ~1.7 % relative standard error.
DEFAULT_N_PULSES = 10**8
_ENGINE_IDS = {"exact": 0, "block": 1, "pulse": 2}


def decoy_bb84_mc_rows(
    key,
    link: Link | None = None,
    protocol: DecoyBB84 | None = None,
    lengths_km: Sequence[float] = (0.0, 25.0, 50.0, 75.0, 100.0),
    engines: Sequence[str] = ENGINES,
    n_pulses: int = DEFAULT_N_PULSES,
    *,
    path: str = "fast",
    chunk: int | None = None,
    methods: tuple[str, str] | None = None,
    analysis: VacuumWeak | None = None,
    confidence: float = 0.95,
) -> list[dict]:
    """Tidy rows: one per length x engine x intensity.

    Args:
        key: JAX PRNG key; each (engine, length) point folds in its own index (independent points).
        link: the link (default :func:`gys_link`); its fiber length is replaced by each length.
        protocol: pulse classes (default :func:`decoy_protocol`).
        lengths_km: fiber lengths.
        engines: any of ``"exact"``, ``"block"`` (one fast-mode session of ``n_pulses``) and
            ``"pulse"`` (``n_pulses`` pulses on ``path``).
        n_pulses: emitted pulses per Monte Carlo point.
        path: pulse engine path, ``"fast"`` or ``"physical"``.
        chunk: pulse engine chunk (``None``: chosen for the device).
        methods: pulse engine kernel methods (``None``: chosen for the device; speed only).
        analysis: observation-based analysis for the key rate (default ``VacuumWeak()``).
        confidence: of the intervals.

    Returns:
        list of dicts with columns: length_km, engine, path, intensity_index, intensity (mean photon
        number of the class), class_probability, basis ("Z": matched Z, the key basis), n_pulses
        (emitted, all classes), n_sent (matched-Z pulses of this intensity), n_detected, gain,
        gain_stderr (binomial), gain_lo, gain_hi (Wilson), gain_exact, qber, qber_stderr (error
        values 0, 1/2, 1 per detection), qber_exact, key_rate, key_rate_stderr, key_rate_lo,
        key_rate_hi (delta method, clipped at 0), key_rate_exact, key_rate_reason, confidence,
        seconds (wall time of the point). Exact rows have zero standard errors and n_pulses 0.
    """
    link = gys_link() if link is None else link
    protocol = decoy_protocol() if protocol is None else protocol
    analysis = VacuumWeak() if analysis is None else analysis
    for name in engines:
        if name not in ENGINES:
            raise ValueError(f"engine {name!r}: must be one of {ENGINES}")
    validate(link)
    validate(protocol)
    validate(analysis)
    mu = np.asarray(protocol.intensities, dtype=float)
    probs = np.asarray(protocol.probabilities, dtype=float)
    rows: list[dict] = []
    for i, length in enumerate(lengths_km):
        point = replace_path(link, "channel.length_km", float(length))
        ex_obs = exact.observations(point, protocol)
        ex_rate = analysis.key_rate(point, protocol)
        gain_ex = np.asarray(ex_obs.gain[:, 0])
        qber_ex = np.asarray(ex_obs.qber[:, 0])
        for name in engines:
            t0 = time.perf_counter()
            point_key = jax.random.fold_in(jax.random.fold_in(key, _ENGINE_IDS[name]), i)
            if name == "exact":
                n_used, used_path = 0, ""
                n_sent = n_det = np.zeros_like(mu)
                gain, qber = gain_ex, qber_ex
                gain_se = qber_se = np.zeros_like(mu)
                gain_lo, gain_hi = gain_ex, gain_ex
                kr, rate_se, rate_lo, rate_hi = ex_rate, 0.0, float(ex_rate.rate), float(ex_rate.rate)
            else:
                if name == "block":
                    tally = BlockEngine(n_pulses=int(n_pulses), fast=True).tally(point_key, point, protocol)
                    used_path = "fast"
                else:
                    engine = PulseEngine(n_pulses=int(n_pulses), chunk=chunk, path=path, methods=methods)
                    validate(engine)
                    tally = engine.tally(point_key, point, protocol).sifted()
                    used_path = path
                n_used = int(n_pulses)
                n_sent = np.asarray(tally.n_sent_matched[:, 0])
                n_det = np.asarray(tally.n_detected[:, 0])
                gain = np.asarray(tally.gain()[:, 0])
                qber = np.asarray(tally.qber()[:, 0])
                gain_se = np.asarray(tally.gain_stderr()[:, 0])
                qber_se = np.asarray(tally.qber_stderr()[:, 0])
                lo, hi = tally.gain_interval(confidence)
                gain_lo, gain_hi = np.asarray(lo[:, 0]), np.asarray(hi[:, 0])
                kr, est = tally.key_rate(analysis, protocol, point, confidence)
                rate_se, rate_lo, rate_hi = float(est.stderr), float(est.lo), float(est.hi)
            jax.block_until_ready(kr.rate)
            seconds = time.perf_counter() - t0
            for k in range(len(mu)):
                rows.append({
                    "length_km": float(length),
                    "engine": name,
                    "path": used_path,
                    "intensity_index": k,
                    "intensity": float(mu[k]),
                    "class_probability": float(probs[k]),
                    "basis": "Z",
                    "n_pulses": n_used,
                    "n_sent": int(n_sent[k]),
                    "n_detected": int(n_det[k]),
                    "gain": float(gain[k]),
                    "gain_stderr": float(gain_se[k]),
                    "gain_lo": float(gain_lo[k]),
                    "gain_hi": float(gain_hi[k]),
                    "gain_exact": float(gain_ex[k]),
                    "qber": float(qber[k]),
                    "qber_stderr": float(qber_se[k]),
                    "qber_exact": float(qber_ex[k]),
                    "key_rate": float(kr.rate),
                    "key_rate_stderr": float(rate_se),
                    "key_rate_lo": float(rate_lo),
                    "key_rate_hi": float(rate_hi),
                    "key_rate_exact": float(ex_rate.rate),
                    "key_rate_reason": reason_text(kr.reason),
                    "confidence": float(confidence),
                    "seconds": float(seconds),
                })
    return rows



# --------------------------------------------------------------------------------------------
# The study of `qmc experiment=decoy_bb84_mc`
# --------------------------------------------------------------------------------------------

MC_COLUMNS = (
    "length_km", "engine", "path", "intensity_index", "intensity", "class_probability", "basis",
    "n_pulses", "n_sent", "n_detected", "gain", "gain_stderr", "gain_lo", "gain_hi", "gain_exact",
    "qber", "qber_stderr", "qber_exact", "key_rate", "key_rate_stderr", "key_rate_lo", "key_rate_hi",
    "key_rate_exact", "key_rate_reason", "confidence", "seconds",
)


def _run_decoy_bb84_mc(spec):
    """Registry adapter: one chunk per fiber length, so an interrupted run keeps finished lengths.

    Reads ``sweep.length_km``, ``engine`` (the pulse engine: ``n_pulses``, ``path``, ``chunk``,
    ``methods``; the block engine draws sessions of the same ``n_pulses``), ``mc`` (engines,
    confidence), ``analysis.variants`` (the first observation-based one; default vacuum + weak) and
    ``seed``. Every length gets its own key (``fold_in(seed key, length index)``).
    """
    lengths = sweep_axis(spec, "length_km")
    pulse = spec.get("engine")
    if not isinstance(pulse, PulseEngine):
        raise ValidationError(f"engine = {getattr(pulse, 'name', pulse)}: study decoy_bb84_mc takes its pulse count and "
                              "path from the pulse engine (engine=pulse)")
    mc = setting(spec, "mc", EngineComparisonSettings)
    usable = [a for a in analyses(spec).values() if getattr(type(a), "uses_observations", False)]
    analysis = usable[0] if usable else VacuumWeak()
    link, protocol = spec["link"], spec["protocol"]
    validate(link)
    validate(protocol)
    root = jax.random.key(seed(spec))

    def chunks():
        for i, length in enumerate(lengths):
            if not wants(spec, i):  # another shard's, or in the run folder already
                continue
            rows = decoy_bb84_mc_rows(
                jax.random.fold_in(root, i), link, protocol, [float(length)], mc.engines, int(pulse.n_pulses),
                path=pulse.path, chunk=pulse.chunk, methods=pulse.methods, analysis=analysis,
                confidence=float(mc.confidence),
            )
            yield Chunk(rows, i, len(lengths))

    return chunks()


register(Study(name="decoy_bb84_mc", run=_run_decoy_bb84_mc, columns=MC_COLUMNS, figure="qmc.plots.mc:engines_vs_exact",
               figure_name="engines_vs_exact"))
