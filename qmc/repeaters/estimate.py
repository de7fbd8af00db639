"""From sampled chains to the numbers a study reports: waiting time, rate, fidelity, key, PLOB.

All functions are traceable (they run inside the sweep's ``jit(vmap)``) and never return NaN: a
point whose chains all ran over the cap reports 0 delivered pairs and zeros for what needs them.

- ``mean_attempts`` and its standard error over the delivered chains; ``mean_time_s`` =
  mean_attempts * attempt_time; ``rate_pairs_per_s`` = delivered pairs / the rounds all chains
  ran (times attempt_time): 1 / mean_time_s when none was abandoned (the chain restarts after
  each delivery, so by the renewal theorem pairs arrive at this rate); chains abandoned at the
  Monte Carlo's cap (``n_abandoned``) add their time and no pair.
- ``fidelity`` (mean over pairs) and its standard error; the mean Bell coefficients
  (``lambda_phi_plus``, ``lambda_psi_plus``, ``lambda_psi_minus``, ``lambda_phi_minus``) and the
  error rates ``e_x``, ``e_z`` of the delivered ensemble.
- ``key_fraction`` (BBM92) and ``key_fraction_six_state`` per delivered pair, from the mean
  Bell coefficients (the users do not sort pairs by their storage time), and ``key_rate_bps`` =
  rate_pairs_per_s * key_fraction (``key_rate_six_state_bps`` likewise).
- ``plob_bits_per_use`` = -log2(1 - eta) for the whole distance's fiber (the repeaterless bound,
  :func:`qmc.analysis.bounds.plob_bound`; detectors excluded) and ``plob_bps`` = that times the
  attempt rate 1 / attempt_time: a direct link granted one channel use per attempt round of the
  chain's elementary links. ``key_bits_per_round`` = key_fraction / mean_attempts compares with
  ``plob_bits_per_use`` on the same clock.
- ``time_q50_s``, ``time_q90_s``, ``time_q99_s``: quantiles of the waiting time.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from qmc.analysis.bounds import plob_bound
from qmc.repeaters import states
from qmc.repeaters.chain import Chain, Memory
from qmc.repeaters.montecarlo import ChainSamples, sample_chains, sample_points
from qmc.sweep import set_paths

__all__ = ["delivered_correlations", "summarize", "estimate_chains", "chains_vs", "QUANTILES", "plob_per_use"]

QUANTILES = (0.5, 0.9, 0.99)


def delivered_correlations(samples: ChainSamples, chain: Chain, memory: Memory):
    """Correlations (chains, 3) of each delivered pair: the links' correlations multiplied over the
    chain (Werner pairs of ``chain.fidelity()``, or the purified pairs the samples carry), times the
    memory decay of ``storage_rounds * attempt_time`` qubit-seconds."""
    seconds = jnp.maximum(samples.storage_rounds, 0) * chain.attempt_time_s()
    if samples.link_correlations is None:
        c_links = jnp.broadcast_to(states.werner(chain.fidelity()) ** chain.n_links, seconds.shape + (3,))
    else:
        c_links = samples.link_correlations
    dep, deph = memory.decay(seconds)
    return states.decay(c_links, dep, deph)


def plob_per_use(chain: Chain):
    """PLOB bound of the total distance's fiber, secret bits per channel use."""
    eta = 10.0 ** (-chain.loss_db_per_km * chain.length_km / 10.0)
    return plob_bound(eta)


def _masked_mean(x, ok, n):
    mean = jnp.sum(jnp.where(ok, x, 0.0)) / n
    var = jnp.sum(jnp.where(ok, (x - mean) ** 2, 0.0)) / jnp.maximum(n - 1.0, 1.0)
    return mean, jnp.sqrt(var / n)


def summarize(samples: ChainSamples, chain: Chain, memory: Memory) -> dict:
    """The aggregates of the module docstring for one parameter point (a dict of scalars)."""
    ok = samples.attempts > 0
    n_ok = jnp.sum(ok)
    n = jnp.maximum(n_ok, 1).astype(jnp.float64)
    tau = chain.attempt_time_s()
    attempts = samples.attempts.astype(jnp.float64)
    mean_attempts, attempts_stderr = _masked_mean(attempts, ok, n)
    c = delivered_correlations(samples, chain, memory)
    fid, fid_stderr = _masked_mean(states.fidelity(c), ok, n)
    c_mean = jnp.sum(jnp.where(ok[:, None], c, 0.0), axis=0) / n
    lam = states.bell_coefficients(c_mean)
    e_x, e_z = states.error_rates(c_mean)
    any_ok = n_ok > 0
    mean_time = mean_attempts * tau
    total_time = jnp.sum(jnp.abs(attempts)) * tau  # abandoned chains' rounds count too
    rate = jnp.where(total_time > 0.0, n_ok / jnp.where(total_time > 0.0, total_time, 1.0), 0.0)
    rate = jnp.where(any_ok & (total_time <= 0.0), jnp.inf, rate)  # zero length: no waiting at all
    frac = jnp.where(any_ok, states.bbm92_fraction(c_mean), 0.0)
    frac6 = jnp.where(any_ok, states.six_state_fraction(c_mean), 0.0)
    times = jnp.where(ok, attempts * tau, jnp.nan)
    q = jnp.nanquantile(times, jnp.asarray(QUANTILES))
    q = jnp.where(any_ok, q, 0.0)
    plob = plob_per_use(chain)
    per_round = jnp.where(any_ok, frac / jnp.maximum(mean_attempts, 1.0), 0.0)
    return {
        "n_delivered": n_ok,
        "n_abandoned": jnp.sum(samples.attempts < 0),
        "p_link": chain.success_probability(),
        "link_fidelity": chain.fidelity(),
        "attempt_time_s": tau,
        "mean_attempts": mean_attempts,
        "mean_attempts_stderr": attempts_stderr,
        "mean_time_s": mean_time,
        "rate_pairs_per_s": rate,
        "fidelity": jnp.where(any_ok, fid, 0.0),
        "fidelity_stderr": fid_stderr,
        "lambda_phi_plus": lam[0], "lambda_psi_plus": lam[1], "lambda_psi_minus": lam[2], "lambda_phi_minus": lam[3],
        "e_x": e_x, "e_z": e_z,
        "key_fraction": frac,
        "key_fraction_six_state": frac6,
        "key_rate_bps": jnp.where(frac > 0.0, rate * frac, 0.0),
        "key_rate_six_state_bps": jnp.where(frac6 > 0.0, rate * frac6, 0.0),
        "key_bits_per_round": per_round,
        "plob_bits_per_use": plob,
        "plob_bps": jnp.where(tau > 0.0, plob / jnp.where(tau > 0.0, tau, 1.0), jnp.inf),
        "time_q50_s": q[0], "time_q90_s": q[1], "time_q99_s": q[2],
    }


def estimate_chains(key, chain: Chain, memory: Memory, n_chains: int, lanes: int | None = None,
                    devices: int | None = None) -> dict:
    """:func:`summarize` of ``n_chains`` sampled chains of one parameter point."""
    return summarize(sample_chains(key, chain, memory, n_chains, lanes, devices=devices), chain, memory)


def chains_vs(key, tree: dict, paths: tuple[str, ...], points, n_chains: int, lanes: int | None = None,
              devices: int | None = None) -> dict:
    """:func:`summarize` of ``n_chains`` chains at every row of ``points`` (n_points, len(paths)),
    in one compiled program: the points' trees by ``vmap``, their chains as one batch of lanes
    (:func:`qmc.repeaters.montecarlo.sample_points`, split over the local devices: ``devices``,
    None for all of them), the summaries by ``vmap``.

    ``tree`` is ``{"chain": Chain, "memory": Memory}``; ``paths`` dotted paths into it
    (``"chain.length_km"``, ``"memory.t_dephasing_s"``). Points share ``key``."""
    from qmc._devices import resolve

    return _chains_vs(key, tree, tuple(paths), points, n_chains, lanes, resolve(devices))


@functools.partial(jax.jit, static_argnames=("paths", "n_chains", "lanes", "devices"))
def _chains_vs(key, tree, paths, points, n_chains, lanes, devices) -> dict:
    points = jnp.asarray(points, jnp.float64)
    trees = jax.vmap(lambda point: set_paths(tree, paths, point))(points)
    samples = sample_points(key, trees["chain"], trees["memory"], points.shape[0], n_chains, lanes,
                            devices=devices)
    one = lambda att, sto, cor, chain, memory: summarize(ChainSamples(att, sto, chain.n_links, cor), chain, memory)  # noqa: E731
    return jax.vmap(one)(samples.attempts, samples.storage_rounds, samples.link_correlations, trees["chain"],
                         trees["memory"])
