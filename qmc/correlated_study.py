"""Afterpulsing: the exact engine's usual (1 + p_ap) approximation against the stream simulation.

:func:`afterpulse_comparison_rows` gives, for each afterpulse probability and intensity, the
matched-basis gain and QBER of the approximation (:func:`qmc.engines.exact.correlated_approximation`)
and of the stream engine (with stderr by batch means over the independent streams). Every row has
``model_rate = True`` where the detectors have memory: the security proofs behind the analyses
assume neither afterpulsing nor dead time, so rates from such rows are model rates.
Figure: :func:`qmc.plots.correlated.approximation_vs_simulation`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from qmc.engines import exact
from qmc.engines.streams import sample_cells

__all__ = ["afterpulse_comparison_rows"]


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
