"""Studies of repeater chains (:mod:`qmc.repeaters`): ``repeater_chain`` and ``memory_requirements``.

* ``repeater_chain``: rate, fidelity and key rate of chains of ``sweep.n_links`` elementary links
  versus the total distance ``sweep.length_km``, with the memories of the ``memory`` group, and
  the PLOB bound of the whole distance (``plob_bps``: on the chain's own clock, one channel use
  per attempt round of its elementary links, so ``key_rate_bps > plob_bps`` exactly when
  ``key_bits_per_round > plob_bits_per_use``). One compiled sweep per number of links.
* ``memory_requirements``: at each total distance, the key rate of chains of ``sweep.n_links``
  links versus the memories' coherence time (``sweep.coherence_time_s``, which replaces
  ``memory.<requirements.parameter>``: ``t_dephasing_s`` or ``t_depolarizing_s``), and per
  (distance, n_links) the smallest coherence time of the grid from which on the chain beats the
  direct link (``key_rate_bps > plob_bps`` there and at every longer time of the grid):
  ``required_coherence_s`` (empty when none does).

Both draw ``mc.n_chains`` Monte Carlo chains per point (:class:`qmc.studies.settings.RepeaterMCSettings`).
Figures: :func:`qmc.plots.repeaters.repeater_chain`, :func:`qmc.plots.repeaters.memory_requirements`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Iterator, Mapping, Sequence

import jax
import numpy as np

import qmc
from qmc.repeaters import Chain, Memory, chains_vs
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import RepeaterMCSettings, Sweep
from qmc.studies.spec import seed, setting
from qmc.validation import ValidationError

__all__ = ["repeater_chain", "memory_requirements", "REPEATER_COLUMNS", "REQUIREMENT_COLUMNS", "PARAMETERS"]

log = logging.getLogger("qmc")

REPEATER_COLUMNS = (
    "length_km", "n_links", "mean_attempts", "mean_attempts_stderr", "mean_time_s", "rate_pairs_per_s", "fidelity",
    "fidelity_stderr", "key_rate_bps", "plob_bps",
    # more, after the required ones
    "key_fraction", "key_bits_per_round", "plob_bits_per_use", "p_link", "link_fidelity", "attempt_time_s",
    "time_q50_s", "time_q90_s", "e_x", "e_z", "n_delivered", "n_abandoned", "n_chains",
)
REQUIREMENT_COLUMNS = (
    "length_km", "n_links", "memory_parameter", "coherence_time_s", "mean_attempts", "mean_time_s",
    "rate_pairs_per_s", "fidelity", "fidelity_stderr", "key_fraction", "key_rate_bps", "plob_bps", "beats_plob",
    "required_coherence_s", "n_abandoned", "n_chains",
)
PARAMETERS = ("t_dephasing_s", "t_depolarizing_s")  # the coherence times memory_requirements may sweep

_SUMMARY = ("mean_attempts", "mean_attempts_stderr", "mean_time_s", "rate_pairs_per_s", "fidelity", "fidelity_stderr",
            "key_rate_bps", "plob_bps", "key_fraction", "key_bits_per_round", "plob_bits_per_use", "p_link",
            "link_fidelity", "attempt_time_s", "time_q50_s", "time_q90_s", "e_x", "e_z", "n_delivered", "n_abandoned")


def _values(values, name: str, lo: float, whole: bool = False) -> np.ndarray:
    array = np.asarray(values, float).ravel()
    if array.size == 0:
        raise ValidationError(f"{name}: needs at least one value")
    for v in array:
        if not (np.isfinite(v) and v > lo) or (whole and not float(v).is_integer()):
            kind = "a whole number" if whole else "a number"
            raise ValidationError(f"{name} = {v:g} is out of range: must be {kind} > {lo:g}")
    return array


def _chains(chain: Chain, n_links: Sequence[float]) -> list[Chain]:
    out = []
    for n in _values(n_links, "sweep.n_links", 0.0, whole=True):
        at = dataclasses.replace(chain, n_links=int(n))
        try:
            qmc.validate(at, "chain.")
        except ValidationError as err:
            raise ValidationError(str(err).replace("chain.n_links", "sweep.n_links", 1)) from None
        out.append(at)
    return out


def _check(chain, memory, n_chains):
    if not isinstance(chain, Chain):
        raise ValidationError(f"chain: expected qmc.repeaters.Chain (_target_: qmc.repeaters.Chain), "
                              f"got {type(chain).__name__}")
    if not isinstance(memory, Memory):
        raise ValidationError(f"memory: expected qmc.repeaters.Memory (_target_: qmc.repeaters.Memory), "
                              f"got {type(memory).__name__}")
    qmc.validate(chain, "chain.")
    qmc.validate(memory, "memory.")
    if int(n_chains) < 2:
        raise ValidationError(f"mc.n_chains = {n_chains} is out of range: must be a whole number >= 2")


def _rows(out: Mapping[str, Any], i: int, names: Sequence[str]) -> dict:
    row = {}
    for name in names:
        v = np.asarray(out[name])[i]
        row[name] = int(v) if name.startswith("n_") else float(v)
    return row


# ---------------------------------------------------------------------------------------------
# repeater_chain
# ---------------------------------------------------------------------------------------------


def repeater_chain(key, chain: Chain, memory: Memory, lengths_km: Sequence[float], n_links: Sequence[int],
                   n_chains: int = 4000, lanes: int | None = None) -> Iterator[Chunk]:
    """Rows of :data:`REPEATER_COLUMNS`, one chunk per number of links (each a compiled sweep of
    all lengths, ``n_chains`` chains per point; ``chain.length_km`` and ``chain.n_links`` replaced).

    Raises:
        ValidationError: bad input, before anything is compiled.
    """
    _check(chain, memory, n_chains)
    lengths = _values(lengths_km, "sweep.length_km", 0.0)
    chains = _chains(chain, n_links)
    return _chain_chunks(key, chains, memory, lengths, int(n_chains), lanes)


def _chain_chunks(key, chains, memory, lengths, n_chains, lanes) -> Iterator[Chunk]:
    log.info("repeater_chain: %d lengths x n_links %s, %s chains per point", lengths.size,
             [c.n_links for c in chains], f"{n_chains:,}")
    for index, chain in enumerate(chains):
        out = chains_vs(jax.random.fold_in(key, chain.n_links), {"chain": chain, "memory": memory},
                        ("chain.length_km",), lengths[:, None], n_chains=n_chains, lanes=lanes)
        out = jax.device_get(out)
        rows = [{"length_km": float(L), "n_links": chain.n_links, **_rows(out, i, _SUMMARY), "n_chains": n_chains}
                for i, L in enumerate(lengths)]
        yield Chunk(rows, index, len(chains))


def _n_links(spec, chain) -> list:
    sweep = setting(spec, "sweep", Sweep)
    if sweep.n_links is None:
        return [chain.n_links]
    return list(sweep.axis("n_links"))


def _chain_memory(spec):
    chain, memory = spec.get("chain"), spec.get("memory")
    if chain is None or memory is None:
        raise ValidationError("chain, memory: the repeater studies need both groups "
                              "(_target_: qmc.repeaters.Chain and qmc.repeaters.Memory)")
    return chain, memory


def _run_chain(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter: ``chain``, ``memory``, ``sweep.length_km``, ``sweep.n_links`` (null:
    ``chain.n_links``), ``mc.n_chains``, ``mc.lanes``, ``seed``."""
    chain, memory = _chain_memory(spec)
    mc = setting(spec, "mc", RepeaterMCSettings)
    lengths = setting(spec, "sweep", Sweep).axis("length_km")
    return repeater_chain(jax.random.key(seed(spec)), chain, memory, lengths, _n_links(spec, chain),
                          int(mc.n_chains), None if mc.lanes is None else int(mc.lanes))


def _few_lengths(rows) -> str | None:
    if len({float(r["length_km"]) for r in rows}) < 2:
        return "one total distance: a rate-versus-distance figure needs at least two"
    return None


register(Study(
    name="repeater_chain",
    run=_run_chain,
    columns=REPEATER_COLUMNS,
    figure="qmc.plots.repeaters:repeater_chain",
    figure_name="repeater_chain",
    no_figure=_few_lengths,
))


# ---------------------------------------------------------------------------------------------
# memory_requirements
# ---------------------------------------------------------------------------------------------


def required_coherence(times: Sequence[float], beats: Sequence[bool]) -> float | None:
    """The smallest of ``times`` from which on (it and every longer time) ``beats`` holds; None
    when the longest does not beat."""
    order = np.argsort(np.asarray(times, float))
    t = np.asarray(times, float)[order]
    b = np.asarray(beats, bool)[order]
    if b.size == 0 or not b[-1]:
        return None
    k = b.size - 1
    while k > 0 and b[k - 1]:
        k -= 1
    return float(t[k])


def memory_requirements(key, chain: Chain, memory: Memory, lengths_km: Sequence[float], n_links: Sequence[int],
                        coherence_times_s: Sequence[float], parameter: str = "t_dephasing_s",
                        n_chains: int = 2000, lanes: int | None = None) -> Iterator[Chunk]:
    """Rows of :data:`REQUIREMENT_COLUMNS`: every (length, n_links, coherence time), one chunk per
    number of links (one compiled sweep of lengths x times). ``memory.<parameter>`` is replaced by
    each coherence time; the memory's other fields are kept.

    Raises:
        ValidationError: bad input, before anything is compiled.
    """
    if parameter not in PARAMETERS:
        raise ValidationError(f"requirements.parameter = {parameter!r}: must be one of {', '.join(PARAMETERS)}")
    _check(chain, memory, n_chains)
    lengths = _values(lengths_km, "sweep.length_km", 0.0)
    times = np.sort(_values(coherence_times_s, "sweep.coherence_time_s", 0.0))
    chains = _chains(chain, n_links)
    memory = dataclasses.replace(memory, **{parameter: float(times[0])})  # a leaf to sweep
    return _requirement_chunks(key, chains, memory, lengths, times, parameter, int(n_chains), lanes)


def _requirement_chunks(key, chains, memory, lengths, times, parameter, n_chains, lanes) -> Iterator[Chunk]:
    log.info("memory_requirements: %d lengths x %d %s values x n_links %s, %s chains per point", lengths.size,
             times.size, parameter, [c.n_links for c in chains], f"{n_chains:,}")
    grid = np.array([(L, t) for L in lengths for t in times], float)
    names = ("mean_attempts", "mean_time_s", "rate_pairs_per_s", "fidelity", "fidelity_stderr", "key_fraction",
             "key_rate_bps", "plob_bps", "n_abandoned")
    for index, chain in enumerate(chains):
        out = chains_vs(jax.random.fold_in(key, chain.n_links), {"chain": chain, "memory": memory},
                        ("chain.length_km", f"memory.{parameter}"), grid, n_chains=n_chains, lanes=lanes)
        out = jax.device_get(out)
        rows = []
        for i, (L, t) in enumerate(grid):
            row = {"length_km": float(L), "n_links": chain.n_links, "memory_parameter": parameter,
                   "coherence_time_s": float(t), **_rows(out, i, names), "n_chains": n_chains}
            row["beats_plob"] = bool(row["key_rate_bps"] > row["plob_bps"])
            rows.append(row)
        for L in lengths:
            group = [r for r in rows if r["length_km"] == float(L)]
            need = required_coherence([r["coherence_time_s"] for r in group], [r["beats_plob"] for r in group])
            for r in group:
                r["required_coherence_s"] = need
        yield Chunk([{c: r[c] for c in REQUIREMENT_COLUMNS} for r in rows], index, len(chains))


def _run_requirements(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter: ``chain``, ``memory``, ``sweep.length_km``, ``sweep.n_links``,
    ``sweep.coherence_time_s``, ``requirements.parameter``, ``mc.n_chains``, ``mc.lanes``, ``seed``."""
    chain, memory = _chain_memory(spec)
    mc = setting(spec, "mc", RepeaterMCSettings)
    sweep = setting(spec, "sweep", Sweep)
    requirements = spec.get("requirements") or {}
    parameter = requirements.get("parameter", "t_dephasing_s") if isinstance(requirements, Mapping) else requirements
    return memory_requirements(jax.random.key(seed(spec)), chain, memory, sweep.axis("length_km"),
                               _n_links(spec, chain), sweep.axis("coherence_time_s"), parameter,
                               int(mc.n_chains), None if mc.lanes is None else int(mc.lanes))


def _few_times(rows) -> str | None:
    if len({float(r["coherence_time_s"]) for r in rows}) < 2:
        return "one coherence time: the figure needs at least two"
    return None


register(Study(
    name="memory_requirements",
    run=_run_requirements,
    columns=REQUIREMENT_COLUMNS,
    figure="qmc.plots.repeaters:memory_requirements",
    figure_name="memory_requirements",
    no_figure=_few_times,
))
