"""Study ``optimize_link``: the optimal protocol parameters and key rate for a given link.

``qmc experiment=optimize_link channel.length_km=80 detector=snspd analysis=finite_lim2014
analysis.block_size=1e10`` optimizes, for every analysis variant of the config, the parameters
that the analysis reads (the protocol's ``parameter_space``: intensities, their probabilities and
p_z) with :func:`qmc.optimize.maximize_sweep`, prints a plain-text table of the optimal parameters and
rate, writes them to ``results.csv``, and, for more than one length, draws the optimal
parameters versus distance (:func:`qmc.plots.optimize.optimal_parameters_vs_distance`; one
length makes no figure: the table is the result).

The link is the configured one; ``sweep.length_km`` lists the fiber lengths (the experiment's
default is ``[${channel.length_km}]``, one point: override ``sweep.length_km.values=[0,50,100]``,
or ``sweep.length_km.values=null`` for ``start``..``stop``). Variants that no protocol parameter
changes (PLOB) and variants whose rules the protocol breaks (vacuum + weak needs a vacuum decoy)
are skipped with a note.

Check. For finite-key analyses every optimum is checked with the block engine
(:func:`qmc.optimize.check_block_engine`): ``check.n_sessions`` sessions of the predicted number
of pulses, each analysed from its own counts; the median session key length must agree with the
predicted one within the sessions' spread (columns ``mc_*``; ``check.n_sessions=0`` skips it).
"""

from __future__ import annotations

import math
import sys
from typing import Any, Iterator, Mapping, Sequence

import jax
import numpy as np

from qmc import optimize
from qmc._pytree import replace_path
from qmc.analysis import reason_text
from qmc.link import check_noise
from qmc.studies import threads
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import CheckSettings
from qmc.studies.spec import analyses, optimize_settings, require_exact_engine, seed, setting, sweep_axis
from qmc.validation import ValidationError, validate

__all__ = ["OPTIMIZE_COLUMNS", "optimize_link", "format_table", "table_notes"]

OPTIMIZE_COLUMNS = (
    "analysis", "length_km", "block_size", "key_rate", "key_rate_bps", "reason", "free",
    "mu1", "mu2", "mu3", "p_mu1", "p_mu2", "p_mu3", "p_z",
    "key_length", "n_pulses", "qber", "phase_error", "n_eval",
    "mc_sessions", "mc_key_length_median", "mc_key_length_q16", "mc_key_length_q84", "mc_abort_fraction",
    "mc_agrees",
)

def _problem(analysis, protocol) -> str | None:
    """Why ``analysis`` cannot run with ``protocol`` (its rules), or None."""
    try:
        optimize.check_problem(analysis, protocol, protocol.parameter_space(analysis))
    except (ValidationError, ValueError) as err:
        return str(err)
    return None


def _block_checks(key, analysis, link, lengths, protocols, n_sessions: int):
    """check_block_engine at every point (independent keys: fold_in of the point index)."""
    out = []
    for i, length in enumerate(lengths):
        point_link = replace_path(link, "channel.length_km", float(length))
        protocol = jax.tree_util.tree_map(lambda x: x[i], protocols)
        out.append(jax.tree_util.tree_map(
            float, optimize.check_block_engine(jax.random.fold_in(key, i), analysis, point_link, protocol, n_sessions)))
    return out


def _num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _rows(label, analysis, space, lengths, opt, checks, rep_rate_hz, n_sessions) -> list[dict]:
    params = opt.parameters()
    k = np.shape(opt.protocol.intensities)[-1]
    free = " ".join(space.names(k))
    finite = bool(getattr(analysis, "finite", False))
    rows = []
    for i, length in enumerate(lengths):
        rate = float(opt.rate.rate[i])
        row = {
            "analysis": label, "length_km": float(length),
            "block_size": float(analysis.block_size) if finite else None,
            "key_rate": rate, "key_rate_bps": rate * rep_rate_hz, "reason": reason_text(opt.rate.reason[i]),
            "free": free, "n_eval": int(opt.n_eval[i]),
        }
        for j in range(3):
            row[f"mu{j + 1}"] = float(params[f"mu{j + 1}"][i]) if j < k else None
            row[f"p_mu{j + 1}"] = float(params[f"p_mu{j + 1}"][i]) if j < k else None
        row["p_z"] = float(params["p_z"][i])
        for name in ("key_length", "n_pulses", "phase_error"):
            row[name] = _num(getattr(opt.rate, name)[i]) if hasattr(opt.rate, name) else None
        row["qber"] = _num(opt.rate.qber[i])
        if checks is not None:
            c = checks[i]
            row.update(mc_sessions=n_sessions if c["valid"] else 0,
                       mc_key_length_median=c["median"] if c["valid"] else None,
                       mc_key_length_q16=c["q16"] if c["valid"] else None,
                       mc_key_length_q84=c["q84"] if c["valid"] else None,
                       mc_abort_fraction=c["abort_fraction"] if c["valid"] else None,
                       mc_agrees=bool(c["agrees"]) if c["valid"] else None)
        rows.append(row)
    return rows


def _g(x, digits=4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, bool) or x in ("true", "false", "True", "False"):
        return "yes" if x in (True, "true", "True") else "NO"
    if isinstance(x, str):
        return x
    return f"{x:.{digits}g}"


def format_table(rows: Sequence[Mapping[str, Any]], notes: bool = True) -> str:
    """The rows of :func:`optimize_link` as a plain-text table (one line per point and analysis),
    with the footnotes of :func:`table_notes` when ``notes``."""
    head = ["analysis", "km", "block", "key rate", "bit/s", "mu1", "mu2", "mu3", "p_mu1", "p_mu2", "p_mu3",
            "p_z", "MC median/pred.", "reason"]
    lines = [head]
    for r in rows:
        mc = "-"
        if r.get("mc_key_length_median") is not None and r.get("key_length"):
            mc = f"{r['mc_key_length_median'] / r['key_length']:.5f} {_g(r.get('mc_agrees'))}"
        free = set(str(r.get("free") or "").split())

        def param(name):
            if r.get(name) is None or name in free:
                return _g(r.get(name))
            return _g(r[name]) + "*"

        lines.append([
            str(r["analysis"]), _g(r["length_km"]), _g(r.get("block_size"), 3), _g(r["key_rate"]),
            _g(r["key_rate_bps"]), *(param(n) for n in ("mu1", "mu2", "mu3", "p_mu1", "p_mu2", "p_mu3", "p_z")),
            mc, str(r["reason"]),
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(cell.ljust(w) if i in (0, len(head) - 1) else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(line, widths))).rstrip() for line in lines]
    text.insert(1, "-" * max(len(line) for line in text))
    return "\n".join(text + (table_notes(rows) if notes else []))


def table_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Footnotes of :func:`format_table` for these rows: fixed parameters, the block-engine check."""
    out = []
    if any(r.get(n) is not None and n not in str(r.get("free") or "").split()
           for r in rows for n in ("mu1", "mu2", "mu3", "p_mu1", "p_mu2", "p_mu3", "p_z")):
        out.append("* fixed at the protocol's value (no interior optimum, or set by the user)")
    if any(r.get("mc_key_length_median") is not None for r in rows):
        out.append("MC median/pred.: median block-engine session key length over the predicted one, and "
                   "whether they agree within the sessions' spread (half the 16-84 % range)")
    return out


def optimize_link(
    link,
    protocol,
    analyses: Mapping[str, Any],
    lengths_km: Sequence[float],
    *,
    n_starts: int = 2,
    continuation: int = 4,
    solver="bfgs",
    solver_options=None,
    loop: str = "auto",
    check_sessions: int = 1000,
    seed: int = 0,
    print_table: bool = False,
) -> Iterator[Chunk]:
    """Optimal protocol parameters and key rate at each fiber length, per analysis.

    Args:
        link: the link (a :class:`qmc.Fiber` channel: ``length_km`` is set per point); its
            classical traffic, if any, adds its noise at every length (:mod:`qmc.channels.raman`).
        protocol: the starting protocol (fixed parameters keep its values; e.g. Lim's mu3).
        analyses: label -> analysis; each is optimized over the protocol's ``parameter_space``.
        lengths_km: fiber lengths (one point or a sweep, optimized with continuation).
        n_starts, continuation: passed to :func:`qmc.optimize.maximize_sweep`.
        solver, solver_options: the solver and its options (:func:`qmc.optimize.solver_from`).
        loop: where the optimizer's loops run (:func:`qmc.optimize.maximize`).
        check_sessions: block-engine sessions per point for the check of finite-key optima
            (0: no check).
        seed: root of the check's random keys.
        print_table: print :func:`format_table` of each chunk to stdout.

    Yields:
        One :class:`qmc.studies.Chunk` per analysis, rows with :data:`OPTIMIZE_COLUMNS`.

    Raises:
        ValidationError: a bad link (its noise inputs included, :func:`qmc.link.check_noise`), or
            no analysis can run with this protocol (the first reason is given).
    """
    try:
        optimize.solver_from(solver, solver_options)
    except (ValueError, TypeError) as err:
        raise ValidationError(f"optimize.solver = {solver}: {str(err).split(': ', 1)[-1]}") from None
    lengths = np.asarray(lengths_km, np.float64)
    if lengths.ndim != 1 or not len(lengths) or np.any(lengths < 0):
        raise ValidationError("sweep.length_km: needs lengths >= 0")
    validate(link)
    check_noise(link)  # classical traffic: its noise inputs on concrete values, before anything compiles
    jobs, problems = [], []
    for label, analysis in analyses.items():
        if protocol.parameter_space(analysis).size(int(np.size(protocol.intensities))) == 0:
            problems.append(f"{label}: skipped (no protocol parameter to optimize)")
            continue
        problem = _problem(analysis, protocol)
        if problem is not None:
            problems.append(f"{label}: skipped ({problem})")
            continue
        jobs.append((label, analysis))
    if not jobs:
        raise ValidationError("; ".join(problems) if problems else "analysis: no analysis to optimize")
    return _chunks(link, protocol, jobs, problems, lengths, dict(n_starts=n_starts, continuation=continuation,
                   solver=solver, loop=loop, **dict(solver_options or {})), check_sessions, seed, print_table)


def _chunks(link, protocol, jobs, problems, lengths, settings, check_sessions, seed, print_table):
    rep_rate_hz = float(getattr(link.source, "rep_rate_hz", math.nan))
    key = jax.random.key(seed)
    printed: list[dict] = []
    if print_table:
        for note in problems:
            print(f"optimize_link: {note}", file=sys.stderr)

    def job(indexed):  # one analysis: its own program, compiled while the others' are
        index, (label, analysis) = indexed
        space = protocol.parameter_space(analysis)
        opt = optimize.maximize_sweep(analysis, link, protocol, {"link.channel.length_km": lengths}, space,
                                      validate=False, **settings)
        opt = jax.tree_util.tree_map(np.asarray, opt)
        checks = None
        if getattr(analysis, "finite", False) and check_sessions > 0:
            checks = _block_checks(jax.random.fold_in(key, index), analysis, link, lengths, opt.protocol,
                                   int(check_sessions))
        return _rows(label, analysis, space, lengths, opt, checks, rep_rate_hz, int(check_sessions))

    for index, rows in enumerate(threads.ordered(job, enumerate(jobs))):
        printed.extend(rows)
        if print_table:  # the footnotes of all tables once, under the last
            last = index == len(jobs) - 1
            print("\n".join([format_table(rows, notes=False)] + (table_notes(printed) if last else [])), flush=True)
        yield Chunk(rows, index, len(jobs))


# ----------------------------------------------------------------------------------------------
# Registry adapter
# ----------------------------------------------------------------------------------------------


def _run_optimize_link(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter of study ``optimize_link``: reads ``analysis.variants``,
    ``sweep.length_km``, ``optimize`` (n_starts, continuation, solver), ``check`` (n_sessions)
    and ``seed``."""
    require_exact_engine(spec, "optimize_link", "optimizes the exact engine's rate (its optima are checked with "
                         "the block engine: check.n_sessions)")
    settings = optimize_settings(spec)
    return optimize_link(spec["link"], spec["protocol"], analyses(spec), sweep_axis(spec, "length_km"),
                         n_starts=int(settings.n_starts), continuation=int(settings.continuation),
                         solver=settings.solver, solver_options=settings.solver_options, loop=settings.loop,
                         check_sessions=int(setting(spec, "check", CheckSettings).n_sessions), seed=seed(spec),
                         print_table=True)


def _no_figure(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """One length makes no versus-distance figure: the table is the result."""
    if len({float(r["length_km"]) for r in rows}) < 2:
        return ("one length: the table is the result (a sweep, e.g. sweep.length_km.values=[0,50,100], draws "
                "the optimal parameters versus distance)")
    return None


register(Study(name="optimize_link", run=_run_optimize_link, columns=OPTIMIZE_COLUMNS,
               figure="qmc.plots.optimize:optimal_parameters_vs_distance", figure_name="optimal_parameters_vs_distance",
               no_figure=_no_figure))
