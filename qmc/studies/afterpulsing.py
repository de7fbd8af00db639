"""Afterpulsing: the exact engine's usual (1 + p_ap) approximation against the stream simulation.

:func:`afterpulse_comparison_rows` gives, for each afterpulse probability and intensity, the
matched-basis gain and QBER of the approximation (:func:`qmc.engines.exact.correlated_approximation`)
and of the stream engine (with stderr by batch means over the independent streams). Every row has
``model_rate = True`` where the detectors have memory: the security proofs behind the analyses
assume neither afterpulsing nor dead time, so rates from such rows are model rates.
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
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import StreamSettings
from qmc.studies.spec import seed, setting, sweep_axis
from qmc.validation import validate

__all__ = ["afterpulse_comparison_rows", "AFTERPULSING_COLUMNS"]

AFTERPULSING_COLUMNS = (
    "length_km", "p_afterpulse", "afterpulse_decay_gates", "dead_time_gates", "dead_time_mode", "k", "mu",
    "gain_approx", "gain_sim", "gain_sim_stderr", "gain_ratio_sim_over_approx", "qber_approx", "qber_sim",
    "qber_sim_stderr", "n_streams", "n_gates", "burn_in_gates", "model_rate",
)


def _stats(cells, k, basis):
    """Gain and QBER of intensity k, matched basis, with batch-means stderr over streams."""
    cls, out = cells // 4, cells % 4
    kk, a, b, x = cls // 8, (cls // 4) % 2, (cls // 2) % 2, cls % 2
    sel = (kk == k) & (a == basis) & (b == basis)
    det = sel & (out != 0)
    wrong = np.where(x == 0, out == 2, out == 1)
    err = (sel & wrong) + 0.5 * (sel & (out == 3))
    n, d, e = sel.sum(0), det.sum(0), err.sum(0)
    gain = d.sum() / n.sum()
    qber = e.sum() / max(d.sum(), 1)
    s = cells.shape[1]
    se_gain = math.sqrt(np.var(d - gain * n, ddof=1) * s) / n.sum()
    se_qber = math.sqrt(np.var(e - qber * d, ddof=1) * s) / max(d.sum(), 1)
    return gain, se_gain, qber, se_qber


def afterpulse_comparison_rows(key, link, protocol, p_afterpulse_values, n_gates=2048, n_streams=2048,
                               burn_in_gates=512):
    """Rows (dicts): p_afterpulse, intensity index k, mu, gain/qber approximation and simulation
    (Z basis), their stderr, model_rate. Uses ``link.detector``'s decay and dead time."""
    rows = []
    for p_ap in p_afterpulse_values:
        det = dataclasses.replace(link.detector, p_afterpulse=float(p_ap))
        lk = dataclasses.replace(link, detector=det)
        obs = exact.observations(lk, protocol)
        cells = np.asarray(sample_cells(key, lk, protocol, n_gates=n_gates, n_streams=n_streams,
                                        burn_in_gates=burn_in_gates))
        for k, mu in enumerate(np.asarray(protocol.intensities)):
            g, se_g, q, se_q = _stats(cells, k, 0)
            rows.append(dict(
                p_afterpulse=float(p_ap), k=k, mu=float(mu),
                gain_approx=float(obs.gain[k, 0]), qber_approx=float(obs.qber[k, 0]),
                gain_sim=float(g), gain_sim_stderr=float(se_g), qber_sim=float(q), qber_sim_stderr=float(se_q),
                model_rate=det.has_memory(),
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
            rows = afterpulse_comparison_rows(jax.random.fold_in(key, i), link, protocol, [float(p_ap)], **sizes)
            for r in rows:
                r.update(fixed)
                r["gain_ratio_sim_over_approx"] = r["gain_sim"] / r["gain_approx"] if r["gain_approx"] > 0 else None
            yield Chunk(rows, i, len(values))

    return chunks()


register(Study(name="afterpulsing", run=_run_afterpulsing, columns=AFTERPULSING_COLUMNS,
               figure="qmc.plots.correlated:approximation_vs_simulation", figure_name="afterpulse_approximation"))
