"""Afterpulsing: the exact engine's usual (1 + p_ap) approximation against the stream simulation.

:func:`afterpulse_comparison_rows` gives, for each afterpulse probability and intensity, the
matched-basis gain and QBER of the approximation (:func:`qmc.engines.exact.correlated_approximation`)
and of the stream engine (with stderr by batch means over the independent streams), and the
simulated counts behind them (``n_sent`` gates of the class, ``n_detected`` of them with a click).
Every row has ``model_rate = True`` where the detectors have memory: the security proofs behind
the analyses assume neither afterpulsing nor dead time, so rates from such rows are model rates.
Figure: :func:`qmc.plots.correlated.approximation_vs_simulation`.

``qmc experiment=afterpulsing`` runs it as the study ``afterpulsing``: one chunk per afterpulse
probability.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from qmc.engines import exact
from qmc.engines.streams import sample_cells
from qmc.studies.plan import wants
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import StreamSettings
from qmc.studies.spec import seed, setting, sweep_axis
from qmc.validation import validate

__all__ = ["afterpulse_comparison_rows", "AFTERPULSING_COLUMNS"]

AFTERPULSING_COLUMNS = (
    "length_km", "p_afterpulse", "afterpulse_decay_gates", "dead_time_gates", "dead_time_mode", "k", "mu",
    "gain_approx", "gain_sim", "gain_sim_stderr", "gain_ratio_sim_over_approx", "qber_approx", "qber_sim",
    "qber_sim_stderr", "n_sent", "n_detected", "n_streams", "n_gates", "burn_in_gates", "model_rate",
)

# Streams sampled per call of the stream engine: the cells of a call, (n_gates, streams) int32,
# are held in memory at once (2048 streams x 8192 gates: 64 MiB).
_STREAMS_PER_CALL = 2048
# Gates per slice when counting cells per stream (bounds the int64 index array).
_GATES_PER_SLICE = 1024


def _group_size(n_streams: int) -> int:
    """Streams per engine call: the largest multiple of 4 that divides ``n_streams`` and is at
    most :data:`_STREAMS_PER_CALL` (every call has the same shape, so it compiles once)."""
    if n_streams <= _STREAMS_PER_CALL:
        return n_streams
    return max(g for g in range(4, _STREAMS_PER_CALL + 1, 4) if n_streams % g == 0)


def _stream_counts(key, link, protocol, n_gates, n_streams, burn_in_gates):
    """Tallied cells per stream: int64 (n_streams, n_cells), cell = class * 4 + outcome (see
    :func:`qmc.engines.streams.sample_cells`). Streams are sampled in groups (independent keys
    ``fold_in(key, group)`` when there is more than one group), so memory is set by the group."""
    n_cells = 4 * 8 * len(np.asarray(protocol.intensities))
    group = _group_size(n_streams)
    n_groups = n_streams // group
    out = []
    for j in range(n_groups):
        cells = np.asarray(sample_cells(key if n_groups == 1 else jax.random.fold_in(key, j), link, protocol,
                                        n_gates=n_gates, n_streams=group, burn_in_gates=burn_in_gates))
        offset = n_cells * np.arange(group, dtype=np.int64)[None, :]
        counts = np.zeros(group * n_cells, np.int64)
        for start in range(0, n_gates, _GATES_PER_SLICE):
            counts += np.bincount((cells[start:start + _GATES_PER_SLICE] + offset).ravel(), minlength=group * n_cells)
        out.append(counts.reshape(group, n_cells))
    return np.concatenate(out)


def _stats(counts, k, basis):
    """Gain and QBER of intensity k, matched basis, with batch-means stderr over streams, and the
    class's gates and detections. QBER and its stderr are None without a detection."""
    c = counts.reshape(counts.shape[0], -1, 2, 2, 2, 4)[:, k, basis, basis]  # (streams, x, outcome)
    n = c.sum(axis=(1, 2))
    d = n - c[:, :, 0].sum(axis=1)
    # outcome 1: detector 0 only (bit 0), 2: detector 1 only, 3: both (a random bit, half wrong)
    e = c[:, 0, 2] + c[:, 1, 1] + 0.5 * c[:, :, 3].sum(axis=1)
    n_sent, n_det = int(n.sum()), int(d.sum())
    s = counts.shape[0]
    gain = n_det / n_sent
    se_gain = math.sqrt(np.var(d - gain * n, ddof=1) * s) / n_sent
    if n_det == 0:
        return gain, se_gain, None, None, n_sent, n_det
    qber = e.sum() / n_det
    se_qber = math.sqrt(np.var(e - qber * d, ddof=1) * s) / n_det
    return gain, se_gain, qber, se_qber, n_sent, n_det


def afterpulse_comparison_rows(key, link, protocol, p_afterpulse_values, n_gates=2048, n_streams=2048,
                               burn_in_gates=512):
    """Rows (dicts): p_afterpulse, intensity index k, mu, gain/qber approximation and simulation
    (Z basis), their stderr, the class's simulated gates and detections (n_sent, n_detected),
    model_rate. Uses ``link.detector``'s decay and dead time."""
    rows = []
    for p_ap in p_afterpulse_values:
        det = dataclasses.replace(link.detector, p_afterpulse=float(p_ap))
        lk = dataclasses.replace(link, detector=det)
        obs = exact.observations(lk, protocol)
        counts = _stream_counts(key, lk, protocol, n_gates, n_streams, burn_in_gates)
        for k, mu in enumerate(np.asarray(protocol.intensities)):
            g, se_g, q, se_q, n_sent, n_det = _stats(counts, k, 0)
            rows.append(dict(
                p_afterpulse=float(p_ap), k=k, mu=float(mu),
                gain_approx=float(obs.gain[k, 0]), qber_approx=float(obs.qber[k, 0]),
                gain_sim=float(g), gain_sim_stderr=float(se_g),
                qber_sim=None if q is None else float(q), qber_sim_stderr=None if se_q is None else float(se_q),
                n_sent=n_sent, n_detected=n_det, model_rate=det.has_memory(),
            ))
    return rows


def _run_afterpulsing(spec):
    """Registry adapter of ``qmc experiment=afterpulsing``: one chunk per afterpulse probability.

    Reads ``sweep.p_afterpulse`` (values in [0, 1)), ``streams`` (``n_streams``, ``n_gates``,
    ``burn_in_gates``), the link (its detector's decay and dead time) and ``seed``. Every value
    is checked (as the detector field it sets) before anything is compiled.
    """
    values = sweep_axis(spec, "p_afterpulse")
    link, protocol = spec["link"], spec["protocol"]
    validate(link)
    validate(protocol)
    for p_ap in values:
        validate(dataclasses.replace(link.detector, p_afterpulse=float(p_ap)), "detector.")  # field and range
    streams = setting(spec, "streams", StreamSettings)
    sizes = {name: int(float(getattr(streams, name))) for name in ("n_streams", "n_gates", "burn_in_gates")}
    key = jax.random.key(seed(spec))
    det = link.detector
    fixed = dict(length_km=float(link.channel.length_km) if hasattr(link.channel, "length_km") else None,
                 afterpulse_decay_gates=float(det.afterpulse_decay_gates), dead_time_gates=float(det.dead_time_gates),
                 dead_time_mode=str(det.dead_time_mode), **sizes)

    def chunks():
        for i, p_ap in enumerate(values):
            if not wants(spec, i):  # another shard's, or in the run folder already
                continue
            rows = afterpulse_comparison_rows(jax.random.fold_in(key, i), link, protocol, [float(p_ap)], **sizes)
            for r in rows:
                r.update(fixed)
                r["gain_ratio_sim_over_approx"] = r["gain_sim"] / r["gain_approx"] if r["gain_approx"] > 0 else None
            yield Chunk(rows, i, len(values))

    return chunks()


register(Study(name="afterpulsing", run=_run_afterpulsing, columns=AFTERPULSING_COLUMNS,
               figure="qmc.plots.correlated:approximation_vs_simulation", figure_name="afterpulse_approximation"))
