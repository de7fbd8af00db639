"""Study ``wdm_coexistence``: key rate versus fiber length beside classical traffic in the same fiber,
for several total classical launch powers, asymptotic and finite-key analyses.

The classical channels of ``link.classical`` (:mod:`qmc.channels.raman`) add spontaneous Raman
scattering and demultiplexer leakage to Bob's background (:meth:`qmc.Link.background_click_probability`);
the study sweeps their total launch power beside the fiber length, split evenly over the channels
(each gets ``P_total - 10 log10(n)`` dBm), in the direction the traffic is configured with
(``classical.direction``: a run writes rows of that direction only). The analyses of
``analysis.variants`` are evaluated as the study that owns them does:

* the asymptotic decoy-state analyses (Lo, Ma, Chen, PRL 94, 230504 (2005); GLLP) as
  :func:`qmc.studies.key_rate.key_rate_vs_distance` (the same per-point function, mu maximized on
  the same grid; one ``jit(vmap)`` per chunk of (launch power, length) points);
* the finite-key analyses of :mod:`qmc.analysis.finite` (Lim et al., PRA 89, 022307 (2014); Rusca
  et al., APL 112, 171104 (2018)) and their asymptotic limits as the finite-key studies do
  (:func:`qmc.studies.finite_optimize.optimize_at`: intensities, their probabilities and p_z
  optimized at every point, the weakest decoy mu3 fixed; one chain along the lengths per launch
  power), at the analysis' own block size n_X, on the exact engine's expected counts.

At a launch power of -inf dBm the traffic adds exactly nothing and the rates are those of the link
without traffic.

Figure: :func:`qmc.plots.wdm.key_rate_vs_distance_wdm`.
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
import numpy as np

from qmc.analysis.finite import FINITE
from qmc.channels.raman import (
    MAX_LAUNCH_POWER_DBM, ClassicalChannel, ClassicalTraffic, leakage_power_w, noise_photons_per_s, raman_power_w,
)
from qmc.link import Link, check_noise, has_traffic, noise_click_probability
from qmc.studies import threads
from qmc.studies.finite_key import finite_rows
from qmc.studies.finite_optimize import check_finite_inputs, check_method, optimize_at
from qmc.studies.key_rate import _NO_SIGNAL_INTENSITY, _point_fn, _row, check_inputs
from qmc.studies.plan import plan_of
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import Sweep
from qmc.studies.spec import analyses, optimize_settings, require_exact_engine, seed, setting
from qmc.sweep import auto_chunk_size, grid, grid_evaluations, run
from qmc.validation import Range, ValidationError

__all__ = ["wdm_coexistence", "launch_powers", "WDM_COLUMNS", "traffic_of", "total_launch_power_dbm", "traffic_direction"]

WDM_COLUMNS = (
    "length_km", "launch_power_dbm", "direction", "analysis", "key_rate", "key_rate_bps", "mu", "reason", "qber",
    "raman_photons_per_s", "leakage_photons_per_s", "noise_clicks_per_gate", "y1", "e1", "gain", "block_size",
)

# The analyses evaluated as the finite-key studies do (every protocol parameter optimized).
_FINITE_TYPES = tuple(FINITE.values())

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
    finite_options: Mapping[str, Any] | None = None,
    wanted: Callable[[int], bool] | None = None,
) -> Iterator[Chunk]:
    """Key rate of each analysis versus fiber length, for each total classical launch power.

    Args:
        link: the link; its channel a :class:`qmc.Fiber`, its ``classical`` traffic at least one
            :class:`qmc.channels.raman.ClassicalChannel` (their configured launch powers are
            replaced; wavelengths, direction, losses and isolation stay).
        protocol: the configured :class:`qmc.DecoyBB84` (signal first) of the asymptotic decoy
            analyses; the finite-key analyses optimize their own protocol (only its mu3, the
            weakest of three intensities, is read: through ``finite_options``, see below).
        analyses: label -> analysis object: those of :func:`qmc.studies.key_rate.key_rate_vs_distance`
            and those of :mod:`qmc.analysis.finite` (``FiniteLim2014``, ``FiniteRusca2018``,
            ``AsymptoticTwoDecoy``, ``AsymptoticOneDecoy``), each at its own ``block_size``.
        lengths_km: fiber lengths in km, shape (n,), ascending for the finite-key analyses (one
            optimizer chain along them per launch power).
        launch_powers_dbm: total launch powers in dBm, shape (m,), each split evenly over the
            channels; -inf is allowed (no traffic noise at all).
        mu_grid: signal intensities to search (asymptotic decoy analyses), or None to keep the
            configured one.
        chunk_size: (power, length) points per compiled call of the asymptotic decoy analyses
            (None: :func:`qmc.sweep.auto_chunk_size`).
        finite_options: keywords of :func:`qmc.studies.finite_optimize.optimize_at` for the
            finite-key analyses: ``method`` (``gradient``, the default, or ``search``), ``mu3``
            (default Lim's 2e-4), ``seed`` and the method's settings, e.g.
            :meth:`qmc.studies.settings.OptimizeSettings.optimizer_kwargs`.
        wanted: ``wanted(chunk number) -> bool``: the launch powers to compute (None: all); the
            others yield nothing.

    Returns:
        An iterator of :class:`Chunk`, one per launch power (computed and yielded in turn); rows have the keys of
        :data:`WDM_COLUMNS`, ordered by launch power, then length, then analysis (in the order of
        ``analyses``). ``raman_photons_per_s`` and ``leakage_photons_per_s`` are the noise photon
        rates inside Bob's filter at the end of the fiber (all channels, before the detector
        efficiency); ``noise_clicks_per_gate`` is the expected number of noise detections per gate
        on Bob's two detectors together (2 p_noise, dark counts excluded). Finite-key rows: ``mu``
        is the optimal signal intensity mu1, ``e1`` the phase-error bound, ``block_size`` n_X (None
        for the other analyses), ``y1`` and ``gain`` None.

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
    finite = {label: a for label, a in analyses.items() if isinstance(a, _FINITE_TYPES)}
    decoy = {label: a for label, a in analyses.items() if label not in finite}
    options = dict(finite_options or {})
    method = options.pop("method", "gradient")
    if decoy or not finite:
        lengths, _, protocols, mus = check_inputs(link, protocol, decoy, lengths_km, mu_grid, chunk_size)
    else:
        lengths, protocols, mus = np.asarray(lengths_km, dtype=float), {}, None
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValidationError(f"sweep.chunk_size = {chunk_size} is out of range: must be >= 1")
    if finite:
        check_finite_inputs(link, finite, lengths, np.ones(1), "exact", 0.0)
        check_method(method, options)
        if np.any(np.diff(lengths) < 0):
            raise ValidationError("sweep.length_km: the finite-key analyses need ascending lengths (one optimizer "
                                  "chain along them)")
    check_noise(link)
    link = dataclasses.replace(link, classical=traffic_of(link))
    return _chunks(link, protocols, dict(analyses), tuple(decoy), lengths, powers, mus, chunk_size,
                   (method, options), wanted)


def _at_power(link: Link, power_dbm: Any) -> Link:
    """The link with the total launch power ``power_dbm`` spread evenly over its channels (each gets
    ``P - 10 log10(n)`` dBm); traced or concrete. The leaves are set as JAX unflattens a tree,
    without running the traffic's constructor again (it must not see traced values)."""
    each = jnp.asarray(power_dbm) - 10.0 * math.log10(len(link.classical.channels))
    key = jax.tree_util.GetAttrKey
    prefix, leaf_key = (key("classical"), key("channels")), key("launch_power_dbm")

    def set_power(path, leaf):
        return each if tuple(path[:2]) == prefix and path[-1] == leaf_key else leaf

    return jax.tree_util.tree_map_with_path(set_power, link)


@functools.lru_cache(maxsize=32)
def _wdm_point_fn(labels: tuple, optimized: tuple) -> Callable[[Any], Any]:
    """The per-point function: the total launch power spread over the channels, then the key-rate
    sweep's own point function (:func:`qmc.studies.key_rate._point_fn`) and the noise diagnostics.
    Cached like that one, so that runs with the same structure reuse the compiled code."""
    rates = _point_fn(labels, optimized)

    def point(tree):
        link = _at_power(tree["link"], tree[_POWER])
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


def _sweep(link, protocols, analyses, labels, lengths, powers, mus, chunk_size):
    """The asymptotic decoy analyses and the noise diagnostics at every (power, length) point, as
    numpy arrays (power-major): ``(optimized per label, (out, noise))``."""
    optimized = {
        label: mus is not None and not isinstance(analyses[label], _NO_SIGNAL_INTENSITY) for label in labels
    }
    point = _wdm_point_fn(labels, tuple(optimized[label] for label in labels))
    tree = {
        "link": link,
        _POWER: jnp.zeros(()),
        "protocols": protocols,
        "analyses": {label: analyses[label] for label in labels},
        "mu_grid": jnp.zeros(1) if mus is None else jnp.asarray(mus),
    }
    sweep_grid = grid({_POWER: powers, _LENGTH: lengths})
    n_points = sweep_grid.size
    evaluations = max(1, sum(grid_evaluations(len(mus)) if optimized[label] else 1 for label in labels))
    size = auto_chunk_size(n_points, evaluations) if chunk_size is None else min(int(chunk_size), n_points)
    parts = [out for _, _, out in run(point, tree, sweep_grid, size)]
    return optimized, jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *parts)


def _finite_curve(link, analysis, lengths, powers, method, options):
    """One finite-key (or its asymptotic) analysis optimized along the lengths at every power, as
    the finite-key studies do (:func:`qmc.studies.finite_optimize.optimize_at`): its rows of
    :func:`qmc.studies.finite_key.finite_rows`, power-major."""
    blocks = np.full(len(lengths), float(analysis.block_size) if type(analysis).finite else 1.0)
    chain = {"chain_length": len(lengths)} if method == "gradient" else {}
    rows = []
    for power in powers:
        best, _, params = optimize_at(method, analysis, _at_power(link, power), lengths, blocks, **chain, **options)
        rows += finite_rows(analysis, "exact", 0.0, lengths, blocks, best, params)
    return rows


def _finite_row(length_km, label, analysis, found, rep_rate_hz) -> dict:
    """A row of :data:`WDM_COLUMNS` from a row of :func:`qmc.studies.finite_key.finite_rows`."""
    rate = found["key_rate"]
    keyed = rate > 0
    return {
        "length_km": length_km, "analysis": label, "key_rate": rate, "key_rate_bps": rate * rep_rate_hz,
        "mu": found["mu1"] if keyed else None, "reason": found["reason"],
        "y1": None, "e1": found["phase_error"] if keyed else None, "gain": None,
        "qber": found["qber"] if keyed else None,
        "block_size": float(analysis.block_size) if type(analysis).finite else None,
    }


def _chunks(link, protocols, analyses, decoy, lengths, powers, mus, chunk_size, finite_method,
            wanted=None) -> Iterator[Chunk]:
    labels = tuple(analyses)
    finite = [label for label in labels if label not in decoy]
    method, options = finite_method
    direction = traffic_direction(link)
    n_points = len(powers) * len(lengths)
    log.info("wdm_coexistence (%s): %d launch powers x %s lengths x %d analyses = %s rows (%d finite-key, "
             "optimized along the lengths per power)", direction, len(powers), f"{len(lengths):,}", len(labels),
             f"{n_points * len(labels):,}", len(finite))

    rep_rate_hz = float(getattr(link.source, "rep_rate_hz", math.nan))
    for j, power_dbm in enumerate(powers):  # one launch power per chunk: a crash keeps the finished ones
        if wanted is not None and not wanted(j):
            continue
        one = np.asarray([power_dbm])

        def job(name, one=one):  # the sweep and each finite-key analysis: their programs compile side by side
            if name is None:
                return _sweep(link, protocols, analyses, decoy, lengths, one, mus, chunk_size)
            return _finite_curve(link, analyses[name], lengths, one, method, options)

        results = list(threads.ordered(job, [None, *finite]))
        optimized, (out, noise) = results[0]
        curves = dict(zip(finite, results[1:]))
        rows = []
        for i, length_km in enumerate(lengths):
            extra = {name: float(v[i]) for name, v in noise.items()}
            extra.update({_POWER: float(power_dbm), "direction": direction})
            for label in labels:
                if label in curves:
                    row = _finite_row(float(length_km), label, analyses[label], curves[label][i], rep_rate_hz)
                else:
                    rate_out, mu = out[label]
                    row = _row(float(length_km), label, analyses[label], rate_out, mu, i, optimized[label],
                               rep_rate_hz)
                    row["block_size"] = None
                rows.append({**row, **extra})
        yield Chunk(rows, j, len(powers))


def launch_powers(sweep: Sweep, link: Link, study: str, example: str) -> np.ndarray:
    """The total launch powers a WDM study runs: ``sweep.launch_power_dbm``, else the configured
    total power of ``classical``; refused in one line without traffic (``example``: a classical
    option to suggest)."""
    if sweep.launch_power_dbm is not None:
        return sweep.axis("launch_power_dbm")
    if has_traffic(link):
        return np.asarray([total_launch_power_dbm(link)])
    raise ValidationError(f"classical: study {study} needs classical traffic in the fiber (e.g. classical={example})")


def _run_wdm_coexistence(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter: ``sweep.length_km``, ``sweep.launch_power_dbm`` (absent: the configured
    total launch power of ``classical``), ``sweep.chunk_size``, ``optimize.mu`` (asymptotic decoy
    analyses), ``optimize.method`` and its settings and ``seed`` (finite-key analyses),
    ``analysis.variants``."""
    require_exact_engine(spec, "wdm_coexistence", "uses the exact engine only")
    sweep = setting(spec, "sweep", Sweep)
    link = spec["link"]
    powers = launch_powers(sweep, link, "wdm_coexistence", "data_c_band")
    variants = analyses(spec)
    settings = optimize_settings(spec)
    finite_options = None
    if any(isinstance(a, _FINITE_TYPES) for a in variants.values()):
        finite_options = settings.optimizer_kwargs(seed(spec), spec.get("protocol"))
    mu = settings.mu
    return wdm_coexistence(link, spec["protocol"], variants, sweep.axis("length_km"), powers,
                           None if mu is None else mu.grid("optimize.mu"), sweep.chunk_size, finite_options,
                           plan_of(spec).wants)


register(Study(
    name="wdm_coexistence",
    run=_run_wdm_coexistence,
    columns=WDM_COLUMNS,
    figure="qmc.plots.wdm:key_rate_vs_distance_wdm",
    figure_name="key_rate_vs_distance_wdm",
))
