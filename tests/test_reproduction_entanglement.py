"""Reproduction: the Bell value of the Micius entanglement distribution (Yin et al., Science 356,
1140 (2017): S = 2.37 +- 0.09) from its measured QBER (about 8.1 %, as Yin et al., Nature 582, 501
(2020) quote it) through qmc's CHSH relation S = 2 sqrt(2) V, V = 1 - 2 E (a Werner pair: the
visibility the BBM92 table gives). Both numbers are read from
``experiments/yin2017_micius_entanglement/published.csv``."""

from __future__ import annotations

from qmc.entanglement.chsh import expected_s
from qmc.gallery import published_points

FOLDER = "yin2017_micius_entanglement"


def _row(quantity: str) -> dict:
    rows = [r for r in published_points(FOLDER) if r["quantity"] == quantity]
    assert len(rows) == 1, quantity
    return rows[0]


def test_the_published_bell_value_follows_from_the_published_qber():
    s, qber = _row("chsh_s"), _row("qber")
    predicted = float(expected_s(1.0 - 2.0 * qber["value"]))
    # "about 8.1 %": the QBER's last digit moves S by 2 sqrt(2) * 2 * 0.0005 = 0.003, well inside
    # the published one-sigma error of S
    assert abs(predicted - s["value"]) <= s["tolerance"], (predicted, s["value"])
    assert predicted > 2.0  # a violation, as published
