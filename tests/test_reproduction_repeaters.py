"""Reproduction of a published repeater-chain result: the 8-segment nested chain without cut-off of
Li, Coopmans, Elkouss, "Efficient optimization of cut-offs in quantum repeater chains", IEEE Trans.
Quantum Eng. 2, 4100115 (2021) (arXiv:2005.04946), as the authors' code computes it
(github.com/BoxiLi/repeater-cut-off-optimization), against qmc's Monte Carlo
(``qmc experiment=li2021_repeater``).

Setting (``conf/experiment/li2021_repeater.yaml``, every value from the authors' files): 8 links,
nested swapping, p_gen = 0.1, p_swap = 0.5, Werner links of w0 = 0.98, memories that multiply a
waiting pair's Werner parameter by exp(-dt / t_coh), t_coh = 400 rounds, no cut-off; each panel of
the published figure varies one of p_gen, p_swap, w0, t_coh (the row's series) from there.

The published numbers, their locations and tolerances are read from
``experiments/li2021_repeater/published.csv``: the secret-key rate per round R of the figure's
"No cut-off" points (the authors' formula: R = max(0, 1 - 2 h((1 - w) / 2)) / T with h in nats, as
their ``utility_functions.py`` computes it, T the mean waiting time and w the mean Werner parameter),
and the mean waiting time T (rounds) and mean fidelity (1 + 3 w) / 4 from the waiting-time
distributions and Werner parameters in the same data files. Each must lie within its tolerance (5
standard errors of this test's Monte Carlo) of qmc's value.

One Monte Carlo sample per (p_gen, p_swap) (10 of them, 20,000 chains each, fixed key); the rows
that vary w0 or t_coh reuse the sample of their (p_gen, p_swap), with the link fidelity and memory
time of the row (about 10 s on a 2-core CPU, compilation included).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import pytest

from qmc import cli
from qmc.gallery import published_points
from qmc.repeaters.estimate import summarize
from qmc.repeaters.montecarlo import sample_chains

FOLDER = "li2021_repeater"
EXPERIMENT = "li2021_repeater"
N_CHAINS = 20_000  # the tolerances in published.csv are 5 standard errors at this many chains
SEED = 0
PANELS = ("p_gen", "p_swap", "w0", "t_coh")
QUANTITIES = ("secret_key_rate_per_round", "mean_attempts", "fidelity")


def published() -> list[dict]:
    rows = published_points(FOLDER)
    assert rows, f"experiments/{FOLDER}/published.csv is missing or empty"
    return rows


def panel(row) -> str:
    """The parameter a row's panel varies: series ``no cut-off: <parameter>``."""
    name = str(row["series"]).rsplit(":", 1)[-1].strip()
    assert name in PANELS, f"unknown series {row['series']!r}"
    return name


def base():
    """(chain, memory, t_coh rounds) of the experiment config: the figure's fixed point."""
    _, spec, _ = cli.prepare(cli.compose(f"experiment={EXPERIMENT}"))
    chain, memory = spec["chain"], spec["memory"]
    tau = float(chain.attempt_time_s())
    return chain, memory, float(memory.t_depolarizing_s) / (2.0 * tau)


def point(row, chain, memory, t_coh):
    """The (chain, memory) of a published row: its panel's parameter replaced by x."""
    x, name = float(row["x"]), panel(row)
    tau = float(chain.attempt_time_s())
    if name == "p_gen":
        chain = dataclasses.replace(chain, p_link=x)
    elif name == "p_swap":
        chain = dataclasses.replace(chain, swap_probability=x)
    elif name == "w0":
        chain = dataclasses.replace(chain, link_fidelity=(1.0 + 3.0 * x) / 4.0)
    else:  # the authors' w exp(-dt / t_coh) per waiting pair = exp(-2 dt tau / t_dep)
        memory = dataclasses.replace(memory, t_depolarizing_s=2.0 * x * tau)
    return chain, memory


def _entropy_nats(x: float) -> float:
    return -x * math.log(x) - (1.0 - x) * math.log(1.0 - x)


def key_rate_li(mean_attempts: float, fidelity: float) -> float:
    """The authors' secret-key rate per round (utility_functions.py secret_key_rate / secret_fraction)."""
    w = (4.0 * fidelity - 1.0) / 3.0
    return max(0.0, (1.0 - 2.0 * _entropy_nats((1.0 - w) / 2.0)) / mean_attempts)


def qmc_values(rows, n_chains: int = N_CHAINS, seed: int = SEED) -> list[dict]:
    """qmc's mean_attempts, fidelity and the authors' R (with standard errors) for each row."""
    chain, memory, t_coh = base()
    summary = jax.jit(summarize)
    samples = {}
    out = []
    for row in rows:
        c, m = point(row, chain, memory, t_coh)
        pq = (float(c.p_link), float(c.swap_probability))
        if pq not in samples:
            samples[pq] = sample_chains(jax.random.key(seed), c, memory, n_chains)
        s = jax.device_get(summary(samples[pq], c, m))
        t, t_se = float(s["mean_attempts"]), float(s["mean_attempts_stderr"])
        f, f_se = float(s["fidelity"]), float(s["fidelity_stderr"])
        w = (4.0 * f - 1.0) / 3.0
        slope = math.log((1.0 + w) / (1.0 - w))  # d(1 - 2 h((1 - w) / 2)) / dw, h in nats
        r = key_rate_li(t, f)
        r_se = math.hypot(slope * 4.0 / 3.0 * f_se / t, r * t_se / t)
        out.append({"mean_attempts": (t, t_se), "fidelity": (f, f_se), "secret_key_rate_per_round": (r, r_se),
                    "n_abandoned": int(s["n_abandoned"]), "n_delivered": int(s["n_delivered"])})
    return out


@pytest.fixture(scope="module")
def results():
    rows = published()
    return rows, qmc_values(rows)


def test_published_file_covers_the_four_panels():
    rows = published()
    assert {r["quantity"] for r in rows} == set(QUANTITIES)
    assert {panel(r) for r in rows} == set(PANELS)
    for r in rows:
        assert r["x"] is not None and r["value"] is not None and r["tolerance"] is not None and r["tolerance"] > 0
        assert r["source"] and r["location"]


def test_config_is_the_figures_fixed_point():
    chain, memory, t_coh = base()
    assert chain.n_links == 8 and chain.policy == "nested"
    assert float(chain.p_link) == 0.1 and float(chain.swap_probability) == 0.5
    assert float(chain.link_fidelity) == pytest.approx((1.0 + 3.0 * 0.98) / 4.0, abs=1e-15)
    assert float(memory.efficiency) == 1.0 and memory.cutoff_s is None and memory.t_dephasing_s is None
    assert t_coh == pytest.approx(400.0, rel=1e-12)


def test_against_published(results):
    rows, values = results
    bad = []
    for row, v in zip(rows, values):
        assert v["n_abandoned"] == 0 and v["n_delivered"] == N_CHAINS
        got, _ = v[row["quantity"]]
        if abs(got - row["value"]) > row["tolerance"]:
            bad.append(f"{row['quantity']} {row['series']} x={row['x']:g}: qmc {got:.6g}, published "
                       f"{row['value']:.6g} +- {row['tolerance']:.2g}")
    assert not bad, "\n".join(bad)
