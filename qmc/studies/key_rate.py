"""Study ``key_rate_vs_distance``: key rate versus fiber length for several analyses, the signal
intensity optimized at every length (Lo, Ma, Chen 2005, Fig. 1 and its relatives)."""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from qmc.analysis import ChannelBound, NoDecoy, SinglePhoton, reason_text
from qmc.analysis.keyrate import score
from qmc.link import Link
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import Sweep
from qmc.studies.plan import plan_of
from qmc.studies.spec import analyses, optimize_settings, require_exact_engine, setting
from qmc.sweep import auto_chunk_size, chunks, grid, grid_evaluations, maximize_on_grid, padded_index, run
from qmc.validation import Range, ValidationError, validate

__all__ = ["key_rate_vs_distance", "KEY_RATE_COLUMNS", "protocol_for", "check_inputs"]

KEY_RATE_COLUMNS = (
    "length_km", "analysis", "key_rate", "key_rate_bps", "mu", "reason", "y1", "e1", "gain", "qber",
)

# Analyses whose rate does not depend on the signal intensity (no mu is optimized or reported).
_NO_SIGNAL_INTENSITY = (SinglePhoton, ChannelBound)

log = logging.getLogger("qmc")


def protocol_for(analysis: Any, protocol: Any) -> Any:
    """The protocol an analysis variant is evaluated with, derived from the configured one.

    ``no_decoy`` sends signals only: one intensity ``(mu,)`` with probability 1 (the protocol's
    validity rule forbids decoys of equal intensity, and GLLP without decoys has no decoy
    classes). Every other analysis uses ``protocol`` as configured.
    """
    if isinstance(analysis, NoDecoy):
        mu = np.asarray(protocol.intensities, dtype=float)[:1]
        return dataclasses.replace(protocol, intensities=mu, probabilities=np.ones(1))
    return protocol


def _check_pair(label: str, analysis: Any, protocol: Any) -> None:
    for rule in getattr(analysis, "protocol_checks", lambda p: [])(protocol):
        message = rule.error(protocol, "protocol.")
        if message is not None:
            raise ValidationError(f"{message} (analysis {label})")


def key_rate_vs_distance(
    link: Link,
    protocol: Any,
    analyses: Mapping[str, Any],
    lengths_km: Sequence[float],
    mu_grid: Sequence[float] | None = None,
    chunk_size: int | None = None,
    wanted: Callable[[int], bool] | None = None,
) -> Iterator[Chunk]:
    """Key rate of each analysis variant versus fiber length, signal intensity optimized.

    At every length, each analysis that depends on the signal intensity is maximized over
    ``mu_grid`` (``protocol.intensities[0]`` is replaced; decoys stay as configured). The whole
    grid of lengths is cut into chunks; each chunk is one ``jit(vmap(...))`` call covering every
    analysis and every mu, so the sweep compiles once.

    Args:
        link: the link; its channel must have a ``length_km`` leaf (a :class:`qmc.Fiber`).
        protocol: the configured :class:`qmc.DecoyBB84` (signal first). ``no_decoy`` uses its
            signal alone (:func:`protocol_for`).
        analyses: label -> analysis object (``key_rate(link, protocol) -> KeyRate``).
        lengths_km: fiber lengths in km, shape (n,).
        mu_grid: signal intensities to search, or None to keep the configured one.
        chunk_size: lengths per compiled call (None: from the work per point and the device,
            :func:`qmc.sweep.auto_chunk_size`).
        wanted: ``wanted(chunk number) -> bool``: the chunks to compute (None: all); the others
            yield nothing. A chunk's numbers do not depend on which others are computed.

    Returns:
        An iterator of :class:`Chunk`; rows have the keys of :data:`KEY_RATE_COLUMNS`. ``key_rate``
        is in secret bits per emitted pulse (Lo-Ma-Chen's bits per signal pulse with
        ``probabilities = (1, 0, 0)``, ``p_z = 1/2``, ``key_basis = "both"``); ``key_rate_bps`` uses
        ``link.source.rep_rate_hz``; ``mu`` and the diagnostics are None where they do not apply
        (no mu dependence, or rate 0 at every mu); PLOB and TGW are +inf at 0 km.

    Raises:
        ValidationError: bad input, before anything is compiled.
    """
    lengths, labels, protocols, mus = check_inputs(link, protocol, analyses, lengths_km, mu_grid, chunk_size)
    return _key_rate_chunks(link, protocols, dict(analyses), labels, lengths, mus, chunk_size, wanted)


def check_inputs(link, protocol, analyses, lengths_km, mu_grid, chunk_size):
    """A key-rate sweep's inputs checked before anything compiles: ``(lengths, labels, protocols
    per label, mu grid or None)``.

    Raises:
        ValidationError: the first bad value, named as the config key.
    """
    lengths = np.asarray(lengths_km, dtype=float)
    bad = Range("length_km", 0.0).error(SimpleNamespace(length_km=lengths), "sweep.")
    if bad:
        raise ValidationError(bad)
    validate(link)
    validate(protocol, "protocol.")
    if not analyses:
        raise ValidationError("analysis.variants: needs at least one analysis")
    labels = tuple(analyses)
    protocols = {label: protocol_for(analyses[label], protocol) for label in labels}
    for label in labels:
        validate(analyses[label], f"analysis.variants.{label}.")
        _check_pair(label, analyses[label], protocols[label])
    mus = None if mu_grid is None else np.asarray(mu_grid, dtype=float)
    if mus is not None:
        bad = Range("mu", 0.0, lo_open=True).error(SimpleNamespace(mu=mus), "optimize.")
        if bad:
            raise ValidationError(bad)
    if chunk_size is not None and int(chunk_size) < 1:
        raise ValidationError(f"sweep.chunk_size = {chunk_size} is out of range: must be >= 1")
    return lengths, labels, protocols, mus


@functools.lru_cache(maxsize=32)
def _point_fn(labels: tuple, optimized: tuple) -> Callable[[Any], Any]:
    """The per-point function of the key-rate sweep. Cached: the sweep's jit is keyed on this
    function object, so runs with the same analysis labels (a multirun, a test session) reuse the
    compiled code whenever the tree's structure and static fields match."""

    def point(tree):
        out = {}
        for label, optimize in zip(labels, optimized):
            analysis = tree["analyses"][label]
            sub = {"link": tree["link"], "protocol": tree["protocols"][label]}

            def rate(t, analysis=analysis):
                return analysis.key_rate(t["link"], t["protocol"])

            if optimize:
                best, mu = maximize_on_grid(rate, sub, "protocol.intensities.0", tree["mu_grid"], score=score)
            else:
                best, mu = rate(sub), jnp.asarray(sub["protocol"].intensities)[0]
            out[label] = (best, mu)
        return out

    return point


def _key_rate_chunks(link, protocols, analyses, labels, lengths, mus, chunk_size, wanted=None) -> Iterator[Chunk]:
    optimized = {
        label: mus is not None and not isinstance(analyses[label], _NO_SIGNAL_INTENSITY) for label in labels
    }
    point = _point_fn(labels, tuple(optimized[label] for label in labels))

    tree = {
        "link": link,
        "protocols": protocols,
        "analyses": analyses,
        "mu_grid": jnp.zeros(1) if mus is None else jnp.asarray(mus),
    }
    evaluations = sum(grid_evaluations(len(mus)) if optimized[label] else 1 for label in labels)
    size = auto_chunk_size(len(lengths), evaluations) if chunk_size is None else min(int(chunk_size), len(lengths))
    total = -(-len(lengths) // size)
    log.info("key_rate_vs_distance: %s lengths x %d analyses = %s rows (%s analysis evaluations) in %d chunk%s of %s",
             f"{len(lengths):,}", len(labels), f"{len(lengths) * len(labels):,}", f"{len(lengths) * evaluations:,}",
             total, "" if total == 1 else "s", f"{size:,}")
    rep_rate_hz = float(getattr(link.source, "rep_rate_hz", math.nan))
    for index, part in enumerate(chunks(len(lengths), size)):
        if wanted is not None and not wanted(index):
            continue
        # The chunk's lengths padded to the common size, so that every chunk runs the same program
        # whichever others are computed (a shard, a resumed run).
        padded = grid({"link.channel.length_km": lengths[padded_index(part.start, part.stop, size)]})
        _, _, out = next(run(point, tree, padded, size))
        rows = []
        for i, length_km in enumerate(lengths[part]):
            for label in labels:
                rate_out, mu = out[label]
                rows.append(_row(float(length_km), label, analyses[label], rate_out, mu, i,
                                 optimized[label], rep_rate_hz))
        yield Chunk(rows, index, total)


def _row(length_km, label, analysis, out, mu, i, optimized, rep_rate_hz) -> dict:
    rate = float(out.rate[i])
    row = {
        "length_km": length_km,
        "analysis": label,
        "key_rate": rate,
        "key_rate_bps": rate * rep_rate_hz,
        "mu": None,
        "reason": reason_text(out.reason[i]),
        "y1": None, "e1": None, "gain": None, "qber": None,
    }
    if isinstance(analysis, ChannelBound):
        return row
    applies = rate > 0 or not optimized
    if applies and not isinstance(analysis, _NO_SIGNAL_INTENSITY):
        row["mu"] = float(mu[i])
    if applies:
        row.update({k: float(getattr(out, k)[i]) for k in ("y1", "e1", "gain", "qber")})
    return row


def _run_key_rate_vs_distance(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter: ``sweep.length_km``, ``sweep.chunk_size``, ``optimize.mu`` and
    ``analysis.variants`` of the built config."""
    require_exact_engine(spec, "key_rate_vs_distance", "uses the exact engine only")
    sweep = setting(spec, "sweep", Sweep)
    mu = optimize_settings(spec).mu
    return key_rate_vs_distance(spec["link"], spec["protocol"], analyses(spec), sweep.axis("length_km"),
                                None if mu is None else mu.grid("optimize.mu"), sweep.chunk_size, plan_of(spec).wants)


register(Study(
    name="key_rate_vs_distance",
    run=_run_key_rate_vs_distance,
    columns=KEY_RATE_COLUMNS,
    figure="qmc.plots.keyrate:key_rate_vs_distance",
    figure_name="key_rate_vs_distance",
))
