"""Studies ``wdm_band_plan`` and ``wdm_power_budget``: where the quantum channel should sit beside
classical data in the same fiber, and how much classical power the fiber can carry before the key
is gone.

A **band plan** is a named set of replacements of the configured link (``wdm_plan.plans``): the
quantum wavelength (``source.wavelength_nm``), the fiber's loss at it (``channel.loss_db_per_km``),
the classical channels' wavelength, loss, isolation and Raman coefficient (``classical.*``, applied
to every channel) and, where needed, Bob's filter (``detector.filter_nm``). The experiments compare
the two usual plans:

* ``o_band``: the quantum channel at 1310 nm (about 0.33 dB/km) and the data at 1550 nm
  (0.2 dB/km): the data's Raman spectrum is some 240 nm (about 35 THz) away on its anti-Stokes
  side, where it is roughly three orders of magnitude weaker than next to the data, at the price of
  the higher loss at 1310 nm (Chapuran et al., NJP 11, 105001 (2009); Eraerds et al., NJP 12,
  063027 (2010); Patel et al., PRX 2, 041010 (2012) also keep the key and the data in different
  bands);
* ``c_band``: both in the C band, one 100 GHz DWDM slot apart (1549.32 / 1550.12 nm), the lower loss
  but the full Raman noise of the adjacent channel (as in ``wdm_coexistence``).

Every (plan, direction) pair is one link; ``wdm_band_plan`` runs
:func:`qmc.studies.wdm.wdm_coexistence` on each (its rows plus a ``band_plan`` column), and
``wdm_power_budget`` finds, at every fiber length, the largest total classical launch power that
still gives a key (``max_launch_power_dbm``) and the largest that keeps the key rate at 10 % of the
rate without traffic or more (``max_launch_power_dbm_10pct``): a bisection in launch power inside
one ``jit(vmap)`` over the lengths (no Python loop per point), each evaluation the wdm_coexistence
point function (:func:`qmc.studies.wdm._wdm_point_fn`: the signal intensity optimized on the grid).
The key rate falls monotonically with the noise, hence with the launch power, so the bisection
brackets the threshold; after ``n`` halvings of [``power_budget.min_dbm``, ``power_budget.max_dbm``]
the answer is within (max - min) / 2^n dB below the true threshold (``power_budget.tol_db``).

Figures: :func:`qmc.plots.wdm_plan.key_rate_vs_distance_band_plan` and
:func:`qmc.plots.wdm_plan.power_budget_vs_distance`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp

from qmc.channels.raman import DIRECTIONS, MAX_LAUNCH_POWER_DBM, ClassicalTraffic
from qmc.channels.raman_spectrum import WAVELENGTH_RANGE_NM
from qmc.link import Link, check_noise, has_traffic
from qmc.studies.key_rate import _NO_SIGNAL_INTENSITY, check_inputs
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import Sweep
from qmc.studies.spec import analyses, optimize_settings, require_exact_engine, setting
from qmc.studies.wdm import WDM_COLUMNS, _wdm_point_fn, launch_powers, traffic_of, wdm_coexistence
from qmc.sweep import auto_chunk_size, grid, grid_evaluations, run
from qmc.validation import Range, ValidationError, validate

__all__ = [
    "wdm_band_plan", "wdm_power_budget", "apply_plan", "check_plans", "BAND_PLAN_COLUMNS", "POWER_BUDGET_COLUMNS",
    "PLAN_SECTIONS", "CONFIGURED",
]

BAND_PLAN_COLUMNS = ("band_plan",) + tuple(WDM_COLUMNS)
POWER_BUDGET_COLUMNS = (
    "band_plan", "direction", "length_km", "analysis", "max_launch_power_dbm", "max_launch_power_dbm_10pct",
    "key_rate_noiseless",
)
PLAN_SECTIONS = ("source", "channel", "detector", "classical")  # the parts of the link a plan may set
CONFIGURED = "configured"  # the band_plan label of the link as configured (no wdm_plan.plans)
TEN_PERCENT = 0.1  # max_launch_power_dbm_10pct: the key rate at least this fraction of the noiseless one

log = logging.getLogger("qmc")


# ---------------------------------------------------------------------------------------------
# Band plans: named replacements of the link
# ---------------------------------------------------------------------------------------------


def _replace(component: Any, fields: Mapping[str, Any], where: str) -> Any:
    if not isinstance(fields, Mapping):
        raise ValidationError(f"{where[:-1]} = {fields!r}: must be a mapping of field: value")
    names = {f.name for f in dataclasses.fields(component)}
    for key in fields:
        if key not in names:
            raise ValidationError(f"{where}{key}: unknown field of {type(component).__name__}; one of "
                                  f"{', '.join(sorted(names))}")
    try:
        out = dataclasses.replace(component, **dict(fields))
    except (TypeError, ValueError) as err:
        raise ValidationError(f"{where[:-1]}: {err}") from None
    validate(out, where)
    if "wavelength_nm" in fields and hasattr(out, "wavelength_nm"):  # beside traffic: the Raman spectrum's range
        message = Range("wavelength_nm", *WAVELENGTH_RANGE_NM).error(out, where)
        if message is not None:
            raise ValidationError(message)
    return out


def apply_plan(link: Link, overrides: Mapping[str, Any] | None, direction: str | None = None,
               where: str = "wdm_plan.plans.plan.") -> Link:
    """``link`` with a band plan's replacements and, if given, every classical channel's direction.

    Args:
        link: the configured link (its traffic at least one classical channel).
        overrides: ``{section: {field: value}}`` with sections of :data:`PLAN_SECTIONS`; the fields
            of ``classical`` apply to every channel. None: no replacement.
        direction: ``co`` or ``counter`` for every channel, or None to keep the configured one.
        where: the config prefix errors are named with (``wdm_plan.plans.<name>.``).

    Raises:
        ValidationError: an unknown section or field, or a value out of range (one line, named).
    """
    overrides = {} if overrides is None else overrides
    if not isinstance(overrides, Mapping):
        raise ValidationError(f"{where[:-1]} = {overrides!r}: must be a mapping of {', '.join(PLAN_SECTIONS)}")
    parts = {}
    for section, fields in overrides.items():
        if section not in PLAN_SECTIONS:
            raise ValidationError(f"{where}{section}: unknown section; one of {', '.join(PLAN_SECTIONS)}")
        if section != "classical":
            parts[section] = _replace(getattr(link, section), fields or {}, f"{where}{section}.")
    channels = traffic_of(link).channels
    classical = dict(overrides.get("classical") or {})
    if direction is not None:
        if direction not in DIRECTIONS:
            raise ValidationError(f"wdm_plan.directions: {direction!r} is not one of {', '.join(DIRECTIONS)}")
        classical["direction"] = direction
    if classical:
        channels = tuple(_replace(ch, classical, f"{where}classical.") for ch in channels)
    out = dataclasses.replace(link, **parts, classical=ClassicalTraffic(channels))
    check_noise(out, f"{where}classical.")  # the plan's wavelengths against the Raman spectrum
    return out


def check_plans(plans: Mapping[str, Any] | None, directions: Sequence[str] | None) -> tuple[dict, tuple]:
    """The plans and directions of ``wdm_plan`` checked: ``({name: overrides}, directions)``.

    None plans: the configured link alone (label :data:`CONFIGURED`); None directions: the
    configured direction (``(None,)``).
    """
    if plans is None:
        plans = {CONFIGURED: {}}
    if not isinstance(plans, Mapping) or not plans:
        raise ValidationError("wdm_plan.plans: needs at least one band plan (name: {source: ..., classical: ...})")
    if directions is None:
        directions = (None,)
    else:
        directions = (directions,) if isinstance(directions, str) else tuple(directions)
        if not directions:
            raise ValidationError("wdm_plan.directions: needs at least one of co, counter")
        for i, d in enumerate(directions):
            if d not in DIRECTIONS:
                raise ValidationError(f"wdm_plan.directions[{i}] = {d}: must be one of {', '.join(DIRECTIONS)}")
    return dict(plans), directions


def _links(link: Link, plans, directions) -> list[tuple[str, Link]]:
    """One link per (plan, direction), checked, plan-major."""
    if not has_traffic(link):
        raise ValidationError("classical: the band-plan studies need classical traffic in the fiber "
                              "(e.g. classical=data_1550)")
    plans, directions = check_plans(plans, directions)
    return [(name, apply_plan(link, overrides, d, f"wdm_plan.plans.{name}."))
            for name, overrides in plans.items() for d in directions]


# ---------------------------------------------------------------------------------------------
# wdm_band_plan: key rate versus distance per plan, direction and launch power
# ---------------------------------------------------------------------------------------------


def wdm_band_plan(
    link: Link,
    protocol: Any,
    analyses: Mapping[str, Any],
    lengths_km: Sequence[float],
    launch_powers_dbm: Sequence[float],
    plans: Mapping[str, Any] | None = None,
    directions: Sequence[str] | None = None,
    mu_grid: Sequence[float] | None = None,
    chunk_size: int | None = None,
) -> Iterator[Chunk]:
    """Key rate versus fiber length and total classical launch power, for each band plan and direction.

    :func:`qmc.studies.wdm.wdm_coexistence` on the link of every (plan, direction) (:func:`apply_plan`);
    links that differ only in numbers (wavelengths, losses) share its compiled code.

    Args:
        link, protocol, analyses, lengths_km, launch_powers_dbm, mu_grid, chunk_size: as
            :func:`qmc.studies.wdm.wdm_coexistence`.
        plans: ``{name: {section: {field: value}}}`` (:func:`apply_plan`); None: the link as configured.
        directions: ``co`` and/or ``counter``; None: the configured direction.

    Returns:
        An iterator of :class:`Chunk`; rows have :data:`BAND_PLAN_COLUMNS` (the wdm_coexistence
        columns and ``band_plan``), ordered by plan, direction, launch power, length, analysis.

    Raises:
        ValidationError: bad input, before anything is compiled.
    """
    runs = [(name, wdm_coexistence(one, protocol, analyses, lengths_km, launch_powers_dbm, mu_grid, chunk_size))
            for name, one in _links(link, plans, directions)]  # every input checked before the first compile
    return _relabelled(runs)


def _relabelled(runs) -> Iterator[Chunk]:
    index, total = 0, None
    for name, chunks in runs:
        for chunk in chunks:
            total = len(runs) * chunk.total if total is None else total  # every run has the same grid
            yield Chunk([{"band_plan": name, **row} for row in chunk.rows], index, total)
            index += 1


# ---------------------------------------------------------------------------------------------
# wdm_power_budget: the largest launch power with a key, by bisection inside jit(vmap)
# ---------------------------------------------------------------------------------------------


def bisection_steps(min_dbm: float, max_dbm: float, tol_db: float) -> int:
    """Halvings of [min_dbm, max_dbm] that leave a bracket no wider than ``tol_db``."""
    return max(1, math.ceil(math.log2((max_dbm - min_dbm) / tol_db)))


@functools.lru_cache(maxsize=32)
def _budget_point_fn(labels: tuple, optimized: tuple, n_steps: int) -> Callable[[Any], Any]:
    """Per fiber length: for each analysis, the noiseless key rate and the two launch-power
    thresholds, found by ``n_steps`` halvings of the bracket ``tree["bounds_dbm"]`` (both criteria
    side by side, vmapped). Cached: the sweep's jit is keyed on this function object."""
    rate_fns = {label: _wdm_point_fn((label,), (opt,)) for label, opt in zip(labels, optimized)}

    def point(tree):
        out = {}
        lo0, hi0 = tree["bounds_dbm"][0], tree["bounds_dbm"][1]
        for label in labels:
            sub = {"link": tree["link"], "protocols": {label: tree["protocols"][label]},
                   "analyses": {label: tree["analyses"][label]}, "mu_grid": tree["mu_grid"]}

            def rate(power_dbm, sub=sub, label=label):
                return rate_fns[label]({**sub, "launch_power_dbm": power_dbm})[0][label][0].rate

            # no traffic and the two ends of the bracket in one vmapped call (one copy of the
            # analysis in the compiled program besides the loop's)
            ends = jax.vmap(rate)(jnp.stack([jnp.asarray(-jnp.inf), lo0, hi0]))
            noiseless = ends[0]
            need = jnp.stack([jnp.zeros_like(noiseless), TEN_PERCENT * noiseless])  # (2,): any key, 10 %

            def met(r):  # (2,) key rates -> (2,) bools: criterion k met by r[k]
                return (r > 0.0) & (r >= need)

            def ok(powers):  # (2,) launch powers -> (2,) bools: criterion k met at powers[k]
                return met(jax.vmap(rate)(powers))

            lo, hi = jnp.full(2, lo0), jnp.full(2, hi0)
            ok_lo, ok_hi = met(jnp.full(2, ends[1])), met(jnp.full(2, ends[2]))

            def halve(_, bracket):
                lo, hi = bracket
                mid = 0.5 * (lo + hi)
                good = ok(mid)
                return jnp.where(good, mid, lo), jnp.where(good, hi, mid)

            lo, _ = jax.lax.fori_loop(0, n_steps, halve, (lo, hi))
            best = jnp.where(ok_hi, hi0, lo)  # a key even at the upper bound: the bound itself
            out[label] = (jnp.where(ok_lo, best, jnp.nan), noiseless)
        return out

    return point


def wdm_power_budget(
    link: Link,
    protocol: Any,
    analyses: Mapping[str, Any],
    lengths_km: Sequence[float],
    plans: Mapping[str, Any] | None = None,
    directions: Sequence[str] | None = None,
    mu_grid: Sequence[float] | None = None,
    min_dbm: float = -80.0,
    max_dbm: float = MAX_LAUNCH_POWER_DBM,
    tol_db: float = 0.01,
    chunk_size: int | None = None,
) -> Iterator[Chunk]:
    """The largest total classical launch power that still gives a key, versus fiber length.

    For every (plan, direction) link and analysis, at every length: ``max_launch_power_dbm``, the
    largest total launch power (dBm, split evenly over the channels) at which the key rate, the signal
    intensity optimized on ``mu_grid``, is still > 0; ``max_launch_power_dbm_10pct``, the largest at
    which it is still >= 10 % of ``key_rate_noiseless`` (the rate without traffic, -inf dBm). Both are
    lower ends of a bisection bracket of width <= ``tol_db``. NaN (an empty cell) where even
    ``min_dbm`` gives no such key (beyond the reach without traffic, or a budget below ``min_dbm``);
    ``max_dbm`` where even ``max_dbm`` still gives one (the budget is at least that).

    Args:
        link, protocol, analyses, lengths_km, mu_grid: as :func:`wdm_band_plan`.
        plans, directions: as :func:`wdm_band_plan`.
        min_dbm, max_dbm: the bracket of the search, dBm (``power_budget.min_dbm``, ``.max_dbm``;
            max_dbm at most 30 dBm, where the undepleted-pump model ends).
        tol_db: the width of the final bracket, dB (``power_budget.tol_db``).
        chunk_size: lengths per compiled call (None: from the work per point).

    Returns:
        An iterator of :class:`Chunk`; rows have :data:`POWER_BUDGET_COLUMNS`, ordered by plan,
        direction, length, analysis.

    Raises:
        ValidationError: bad input, before anything is compiled.
    """
    box = SimpleNamespace(min_dbm=float(min_dbm), max_dbm=float(max_dbm), tol_db=float(tol_db))
    for rule in (Range("min_dbm", -200.0, MAX_LAUNCH_POWER_DBM), Range("max_dbm", -200.0, MAX_LAUNCH_POWER_DBM),
                 Range("tol_db", 0.0, lo_open=True)):
        message = rule.error(box, "power_budget.")
        if message:
            raise ValidationError(message)
    if not box.min_dbm < box.max_dbm:
        raise ValidationError(f"power_budget.max_dbm = {box.max_dbm:g} is out of range: must be > "
                              f"power_budget.min_dbm = {box.min_dbm:g}")
    links = _links(link, plans, directions)
    checked = [check_inputs(one, protocol, analyses, lengths_km, mu_grid, chunk_size) for _, one in links]
    lengths, labels, protocols, mus = checked[0]
    return _budget_chunks(links, protocols, dict(analyses), labels, lengths, mus, box, chunk_size)


def _budget_chunks(links, protocols, analyses, labels, lengths, mus, box, chunk_size) -> Iterator[Chunk]:
    optimized = tuple(mus is not None and not isinstance(analyses[label], _NO_SIGNAL_INTENSITY) for label in labels)
    n_steps = bisection_steps(box.min_dbm, box.max_dbm, box.tol_db)
    evaluations = sum(grid_evaluations(len(mus)) if opt else 1 for opt in optimized) * 2 * (n_steps + 2)
    size = auto_chunk_size(len(lengths), evaluations) if chunk_size is None else min(int(chunk_size), len(lengths))
    per_link = -(-len(lengths) // size)
    total = per_link * len(links)
    log.info("wdm_power_budget: %d plan x direction links x %d lengths x %d analyses, %d bisection steps of "
             "[%g, %g] dBm, in %d chunk%s of %d", len(links), len(lengths), len(labels), n_steps, box.min_dbm,
             box.max_dbm, total, "" if total == 1 else "s", size)
    index = 0
    for name, link in links:
        point = _budget_point_fn(labels, optimized, n_steps)
        tree = {"link": link, "protocols": protocols, "analyses": analyses,
                "mu_grid": jnp.zeros(1) if mus is None else jnp.asarray(mus),
                "bounds_dbm": jnp.asarray([box.min_dbm, box.max_dbm])}
        direction = link.classical.channels[0].direction
        for _, points, out in run(point, tree, grid({"link.channel.length_km": lengths}), size):
            rows = []
            for i, length_km in enumerate(points[:, 0]):
                for label in labels:
                    budget, noiseless = out[label]
                    rows.append({
                        "band_plan": name, "direction": direction, "length_km": float(length_km), "analysis": label,
                        "max_launch_power_dbm": _cell(budget[i, 0]), "max_launch_power_dbm_10pct": _cell(budget[i, 1]),
                        "key_rate_noiseless": float(noiseless[i]),
                    })
            yield Chunk(rows, index, total)
            index += 1


def _cell(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


# ---------------------------------------------------------------------------------------------
# Registry adapters
# ---------------------------------------------------------------------------------------------


def _plan_settings(spec: Mapping[str, Any]) -> tuple[Any, Any]:
    settings = spec.get("wdm_plan") or {}
    if not isinstance(settings, Mapping):
        raise ValidationError("wdm_plan: must be a mapping with plans and directions")
    unknown = set(settings) - {"plans", "directions"}
    if unknown:
        raise ValidationError(f"wdm_plan.{sorted(unknown)[0]}: unknown key; the keys are plans, directions")
    return settings.get("plans"), settings.get("directions")


def _run_wdm_band_plan(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter: ``wdm_plan.plans``, ``wdm_plan.directions``, ``sweep.length_km``,
    ``sweep.launch_power_dbm`` (absent: the configured total launch power), ``optimize.mu``."""
    require_exact_engine(spec, "wdm_band_plan", "uses the exact engine only")
    sweep = setting(spec, "sweep", Sweep)
    link = spec["link"]
    powers = launch_powers(sweep, link, "wdm_band_plan", "data_1550")
    plans, directions = _plan_settings(spec)
    mu = optimize_settings(spec).mu
    return wdm_band_plan(link, spec["protocol"], analyses(spec), sweep.axis("length_km"), powers, plans, directions,
                         None if mu is None else mu.grid("optimize.mu"), sweep.chunk_size)


def _run_wdm_power_budget(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter: ``wdm_plan.*``, ``power_budget.{min_dbm, max_dbm, tol_db}``,
    ``sweep.length_km``, ``optimize.mu``, ``analysis.variants``."""
    require_exact_engine(spec, "wdm_power_budget", "uses the exact engine only")
    sweep = setting(spec, "sweep", Sweep)
    budget = spec.get("power_budget") or {}
    if not isinstance(budget, Mapping):
        raise ValidationError("power_budget: must be a mapping with min_dbm, max_dbm, tol_db")
    unknown = set(budget) - {"min_dbm", "max_dbm", "tol_db"}
    if unknown:
        raise ValidationError(f"power_budget.{sorted(unknown)[0]}: unknown key; the keys are min_dbm, max_dbm, tol_db")
    numbers = {}
    for key, default in (("min_dbm", -80.0), ("max_dbm", MAX_LAUNCH_POWER_DBM), ("tol_db", 0.01)):
        value = budget.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(f"power_budget.{key} = {value!r} is not a number")
        numbers[key] = float(value)
    plans, directions = _plan_settings(spec)
    mu = optimize_settings(spec).mu
    return wdm_power_budget(spec["link"], spec["protocol"], analyses(spec), sweep.axis("length_km"), plans,
                            directions, None if mu is None else mu.grid("optimize.mu"), chunk_size=sweep.chunk_size,
                            **numbers)


register(Study(
    name="wdm_band_plan",
    run=_run_wdm_band_plan,
    columns=BAND_PLAN_COLUMNS,
    figure="qmc.plots.wdm_plan:key_rate_vs_distance_band_plan",
    figure_name="key_rate_vs_distance_band_plan",
))

register(Study(
    name="wdm_power_budget",
    run=_run_wdm_power_budget,
    columns=POWER_BUDGET_COLUMNS,
    figure="qmc.plots.wdm_plan:power_budget_vs_distance",
    figure_name="power_budget_vs_distance",
))
