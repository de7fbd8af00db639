"""Study ``wdm_coexistence``: key rate versus fiber length beside classical traffic in the same fiber,
for several total classical launch powers (the signal intensity optimized at every point).

The classical channels of ``link.classical`` (:mod:`qmc.channels.raman`) add spontaneous Raman
scattering and demultiplexer leakage to Bob's background (:meth:`qmc.Link.background_click_probability`);
the study sweeps their total launch power beside the fiber length, split evenly over the channels
(each gets ``P_total - 10 log10(n)`` dBm), in the direction the traffic is configured with
(``classical.direction``: a run writes rows of that direction only). Every analysis of
``analysis.variants`` is evaluated as :func:`qmc.studies.key_rate.key_rate_vs_distance` does (the
same per-point function, mu maximized on the same grid); one ``jit(vmap)`` per chunk of
(launch power, length) points. At a launch power of -inf dBm the traffic adds exactly nothing and the
rates are those of the link without traffic.

Figure: :func:`qmc.plots.wdm.key_rate_vs_distance_wdm`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from qmc._pytree import replace_path
from qmc.channels.raman import (
    MAX_LAUNCH_POWER_DBM, ClassicalChannel, ClassicalTraffic, leakage_power_w, noise_photons_per_s, raman_power_w,
)
from qmc.link import Link, check_noise, has_traffic, noise_click_probability
from qmc.studies.key_rate import _NO_SIGNAL_INTENSITY, _point_fn, _row, check_inputs
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import Sweep
from qmc.studies.spec import analyses, optimize_settings, require_exact_engine, setting
from qmc.sweep import auto_chunk_size, grid, grid_evaluations, run
from qmc.validation import Range, ValidationError

__all__ = ["wdm_coexistence", "WDM_COLUMNS", "traffic_of", "total_launch_power_dbm", "traffic_direction"]

WDM_COLUMNS = (
    "length_km", "launch_power_dbm", "direction", "analysis", "key_rate", "key_rate_bps", "mu", "reason", "qber",
    "raman_photons_per_s", "leakage_photons_per_s", "noise_clicks_per_gate", "y1", "e1", "gain",
)

# The swept leaves: the fiber length and the total launch power (a leaf of the sweep's tree, not of
# the link: the point function spreads it over the channels).
_LENGTH = "link.channel.length_km"
_POWER = "launch_power_dbm"

log = logging.getLogger("qmc")


def traffic_of(link: Link) -> ClassicalTraffic:
    """``link.classical`` as a :class:`ClassicalTraffic` (a single channel becomes a tuple of one;
    None becomes no channels). The noise is the same either way."""
    classical = link.classical
    if classical is None:
        return ClassicalTraffic()
    if isinstance(classical, ClassicalChannel):
        return ClassicalTraffic((classical,))
    return classical


def total_launch_power_dbm(link: Link) -> float:
    """The configured total launch power of the link's classical channels, dBm (-inf: none)."""
    watts = sum(10.0 ** (float(ch.launch_power_dbm) / 10.0) for ch in traffic_of(link).channels)
    return 10.0 * math.log10(watts) if watts > 0 else -math.inf


def traffic_direction(link: Link) -> str:
    """The direction of the traffic: ``co`` or ``counter``, or ``co+counter`` for a mixture."""
    directions = sorted({ch.direction for ch in traffic_of(link).channels})
    return "+".join(directions) if directions else "none"


def wdm_coexistence(
    link: Link,
    protocol: Any,
    analyses: Mapping[str, Any],
    lengths_km: Sequence[float],
    launch_powers_dbm: Sequence[float],
    mu_grid: Sequence[float] | None = None,
    chunk_size: int | None = None,
) -> Iterator[Chunk]:
    """Key rate of each analysis versus fiber length, for each total classical launch power.

    Args:
        link: the link; its channel a :class:`qmc.Fiber`, its ``classical`` traffic at least one
            :class:`qmc.channels.raman.ClassicalChannel` (their configured launch powers are
            replaced; wavelengths, direction, losses and isolation stay).
        protocol: the configured :class:`qmc.DecoyBB84` (signal first).
        analyses: label -> analysis object, as for :func:`qmc.studies.key_rate.key_rate_vs_distance`.
        lengths_km: fiber lengths in km, shape (n,).
        launch_powers_dbm: total launch powers in dBm, shape (m,), each split evenly over the
            channels; -inf is allowed (no traffic noise at all).
        mu_grid: signal intensities to search, or None to keep the configured one.
        chunk_size: (power, length) points per compiled call (None: :func:`qmc.sweep.auto_chunk_size`).

    Returns:
        An iterator of :class:`Chunk`; rows have the keys of :data:`WDM_COLUMNS`, ordered by launch
        power, then length, then analysis. ``raman_photons_per_s`` and ``leakage_photons_per_s``
        are the noise photon rates inside Bob's filter at the end of the fiber (all channels,
        before the detector efficiency); ``noise_clicks_per_gate`` is the expected number of noise
        detections per gate on Bob's two detectors together (2 p_noise, dark counts excluded).

    Raises:
        ValidationError: bad input, before anything is compiled.
    """
    powers = np.asarray(launch_powers_dbm, dtype=float)
    bad = Range(_POWER, -math.inf, MAX_LAUNCH_POWER_DBM).error(SimpleNamespace(**{_POWER: powers}), "sweep.")
    if bad:
        raise ValidationError(bad)
    if np.ndim(lengths_km) != 1 or np.size(lengths_km) == 0 or powers.ndim != 1 or powers.size == 0:
        raise ValidationError("sweep.length_km and sweep.launch_power_dbm: need at least one value each")
    if not has_traffic(link):
        raise ValidationError("sweep.launch_power_dbm: the link has no classical channel whose launch power it "
                              "could set (choose traffic, e.g. classical=data_c_band)")
    lengths, labels, protocols, mus = check_inputs(link, protocol, analyses, lengths_km, mu_grid, chunk_size)
    check_noise(link)
    link = dataclasses.replace(link, classical=traffic_of(link))
    return _chunks(link, protocols, dict(analyses), labels, lengths, powers, mus, chunk_size)


@functools.lru_cache(maxsize=32)
def _wdm_point_fn(labels: tuple, optimized: tuple, n_channels: int) -> Callable[[Any], Any]:
    """The per-point function: the total launch power spread over the channels, then the key-rate
    sweep's own point function (:func:`qmc.studies.key_rate._point_fn`) and the noise diagnostics.
    Cached like that one, so that runs with the same structure reuse the compiled code."""
    rates = _point_fn(labels, optimized)
    share_db = 10.0 * math.log10(n_channels)

    def point(tree):
        link = tree["link"]
        each = jnp.asarray(tree[_POWER]) - share_db
        for i in range(n_channels):
            link = replace_path(link, f"classical.channels.{i}.launch_power_dbm", each)
        out = rates({**tree, "link": link})
        fiber, wavelength = link.channel, link.source.wavelength_nm
        raman = raman_power_w(link.classical, fiber.length_km, fiber.loss_db_per_km, wavelength,
                              link.detector.filter_nm)
        leakage = leakage_power_w(link.classical, fiber.length_km, fiber.loss_db_per_km)
        noise = {
            "raman_photons_per_s": noise_photons_per_s(raman, wavelength),
            "leakage_photons_per_s": noise_photons_per_s(leakage, wavelength),
            "noise_clicks_per_gate": 2.0 * noise_click_probability(link),
        }
        return out, noise

    return point


def _chunks(link, protocols, analyses, labels, lengths, powers, mus, chunk_size) -> Iterator[Chunk]:
    optimized = {
        label: mus is not None and not isinstance(analyses[label], _NO_SIGNAL_INTENSITY) for label in labels
    }
    point = _wdm_point_fn(labels, tuple(optimized[label] for label in labels), len(link.classical.channels))
    tree = {
        "link": link,
        _POWER: jnp.zeros(()),
        "protocols": protocols,
        "analyses": analyses,
        "mu_grid": jnp.zeros(1) if mus is None else jnp.asarray(mus),
    }
    sweep_grid = grid({_POWER: powers, _LENGTH: lengths})
    n_points = sweep_grid.size
    evaluations = sum(grid_evaluations(len(mus)) if optimized[label] else 1 for label in labels)
    size = auto_chunk_size(n_points, evaluations) if chunk_size is None else min(int(chunk_size), n_points)
    total = -(-n_points // size)
    direction = traffic_direction(link)
    log.info("wdm_coexistence (%s): %d launch powers x %s lengths x %d analyses = %s rows in %d chunk%s of %s",
             direction, len(powers), f"{len(lengths):,}", len(labels), f"{n_points * len(labels):,}", total,
             "" if total == 1 else "s", f"{size:,}")
    rep_rate_hz = float(getattr(link.source, "rep_rate_hz", math.nan))
    for index, (_, points, (out, noise)) in enumerate(run(point, tree, sweep_grid, size)):
        rows = []
        for i, (power_dbm, length_km) in enumerate(points):
            extra = {k: float(v[i]) for k, v in noise.items()}
            for label in labels:
                rate_out, mu = out[label]
                row = _row(float(length_km), label, analyses[label], rate_out, mu, i, optimized[label], rep_rate_hz)
                rows.append({**row, _POWER: float(power_dbm), "direction": direction, **extra})
        yield Chunk(rows, index, total)


def _run_wdm_coexistence(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter: ``sweep.length_km``, ``sweep.launch_power_dbm`` (absent: the configured
    total launch power of ``classical``), ``sweep.chunk_size``, ``optimize.mu``, ``analysis.variants``."""
    require_exact_engine(spec, "wdm_coexistence", "uses the exact engine only")
    sweep = setting(spec, "sweep", Sweep)
    link = spec["link"]
    if sweep.launch_power_dbm is not None:
        powers = sweep.axis("launch_power_dbm")
    elif has_traffic(link):
        powers = np.asarray([total_launch_power_dbm(link)])
    else:
        raise ValidationError("classical: study wdm_coexistence needs classical traffic in the fiber "
                              "(e.g. classical=data_c_band)")
    mu = optimize_settings(spec).mu
    return wdm_coexistence(link, spec["protocol"], analyses(spec), sweep.axis("length_km"), powers,
                           None if mu is None else mu.grid("optimize.mu"), sweep.chunk_size)


register(Study(
    name="wdm_coexistence",
    run=_run_wdm_coexistence,
    columns=WDM_COLUMNS,
    figure="qmc.plots.wdm:key_rate_vs_distance_wdm",
    figure_name="key_rate_vs_distance_wdm",
))
