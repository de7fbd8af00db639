"""Study settings: the config groups that are not link components (sweep axes, optimizer, Monte Carlo).

Each group is a frozen dataclass with ``checks()`` like every component, built by the ``qmc``
command from the config's ``_target_`` and validated before anything compiles, so a bad value gets
the same one-line error naming the key (``optimize.n_starts = 0 is out of range: ...``). Nested
mappings (a sweep axis given as ``{start, stop, num}``) become :class:`Axis` objects, so experiment
files set axes without a ``_target_`` of their own.

Groups: ``sweep`` (:class:`Sweep`), ``optimize`` (:class:`OptimizeSettings`), ``finite``
(:class:`FiniteSettings`), ``mc`` (:class:`EngineComparisonSettings` for ``decoy_bb84_mc``,
:class:`PassSettings` for ``satellite_pass``,
:class:`RepeaterMCSettings` for ``repeater_chain`` and ``memory_requirements``, :class:`SessionSettings` for ``finite_key_mc``),
``check`` (:class:`CheckSettings`), ``streams`` (:class:`StreamSettings`), ``orbit`` and
``station`` (:class:`OrbitSettings`, :class:`StationSettings` for ``key_per_day``) and ``plot``
(:class:`PlotSettings`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from qmc.engines.lim2014 import MODELS  # system models of the finite-key studies
from qmc.optimize.drivers import LOOPS, SOLVERS
from qmc.optimize.minimize import solver_from
from qmc.studies.axes import SPACINGS, Axis, axis_or_none, axis_values  # noqa: F401  (re-exported)
from qmc.studies.finite_optimize import METHODS  # the finite-key studies' optimizers
from qmc.validation import Check, Range, Rule, ValidationError, whole

__all__ = [
    "Axis", "Sweep", "OptimizeSettings", "FiniteSettings", "EngineComparisonSettings", "SessionSettings",
    "PassSettings", "RepeaterMCSettings", "OrbitSettings", "StationSettings", "ConsecutiveSessions", "CheckSettings", "StreamSettings", "PlotSettings", "axis_values", "SPACINGS", "METHODS", "SOLVERS", "MODELS",
    "RULES", "ENGINES", "DPI",
]

DPI = (50, 1200)  # PNG resolutions accepted by PlotSettings: from a thumbnail to print
RULES = ("until_full", "fixed_pulses")  # session rules of finite_key_mc
ENGINES = ("exact", "block", "pulse")  # engines compared by decoy_bb84_mc


def _one_of(field: str, allowed: Sequence[str]) -> Rule:
    return Rule(field, lambda s, xp: xp.asarray(getattr(s, field) in allowed), f"must be one of {', '.join(allowed)}")


def _all_of(field: str, allowed: Sequence[str]) -> Rule:
    def ok(s, xp):
        value = getattr(s, field)
        items = [value] if isinstance(value, str) else list(value)
        return xp.asarray(bool(items) and all(v in allowed for v in items))

    return Rule(field, ok, f"must be a non-empty list of {', '.join(allowed)}")


def _solver_problem(settings, prefix: str) -> str | None:
    try:
        solver_from(settings.solver, settings.solver_options)
    except (ValueError, TypeError) as err:
        return f"{prefix}solver = {settings.solver}: {str(err).split(': ', 1)[-1]}"
    return None


@dataclasses.dataclass(frozen=True)
class Sweep:
    """The axes a study sweeps inside one run (one compiled ``jit(vmap)`` per chunk of points).

    Attributes:
        length_km, block_size, p_afterpulse, launch_power_dbm: :class:`Axis` (or None where a study
            does not sweep it); ``launch_power_dbm`` is the total classical launch power of
            ``wdm_coexistence`` (dBm, split evenly over the classical channels); ``duty_cycle``
            the bursts' duty cycle of ``wdm_bursty_traffic``.
        chunk_size: grid points per compiled call of the key-rate sweep (None: chosen from the
            work per point and the device, :func:`qmc.sweep.auto_chunk_size`); results.csv grows
            chunk by chunk.
        max_points: the most points an axis may have; a larger sweep is refused before it starts.
        shard_count, shard_index: this run computes only the chunks ``i`` of the sweep with
            ``i % shard_count == shard_index`` (a long sweep split across jobs; ``qmc-merge`` joins
            the pieces into the unsplit run's folder).
    """

    length_km: Any = None
    block_size: Any = None
    p_afterpulse: Any = None
    launch_power_dbm: Any = None
    duty_cycle: Any = None
    culmination_deg: Any = None  # pass_key_vs_elevation: the passes' culmination elevations
    min_elevation_deg: Any = None  # satellite_pass: the elevation cut-offs searched for the pass key
    rytov_variance: Any = None  # turbulence_fading: sigma_R^2 of the fading laws
    loss_db: Any = None  # turbulence_fading: the mean channel loss (dB) of its key-rate curves
    mean_pair_number: Any = None  # chsh_vs_pair_number: the pair source's mean pair number per pulse
    n_links: Any = None  # repeater studies: the chains' numbers of elementary links (null: chain.n_links)
    coherence_time_s: Any = None  # memory_requirements: the memory coherence times searched
    chunk_size: int | None = None
    max_points: int = 10_000_000
    shard_count: int = 1
    shard_index: int = 0

    def __post_init__(self) -> None:
        for f in ("length_km", "block_size", "p_afterpulse", "launch_power_dbm", "duty_cycle", "culmination_deg",
                  "min_elevation_deg", "rytov_variance", "loss_db", "mean_pair_number", "n_links", "coherence_time_s"):
            object.__setattr__(self, f, axis_or_none(getattr(self, f)))

    def checks(self):
        def shard_index(obj, prefix):
            if whole("shard_index", 0).error(obj, prefix) or whole("shard_count", 1).error(obj, prefix):
                return None  # reported by the checks of each field
            if int(obj.shard_index) >= int(obj.shard_count):
                return (f"{prefix}shard_index = {obj.shard_index} is out of range: must be a whole number from 0 to "
                        f"{prefix}shard_count - 1 = {int(obj.shard_count) - 1}")
            return None

        return [whole("chunk_size", 1, allow_none=True), whole("max_points", 1), whole("shard_count", 1),
                whole("shard_index", 0), Check(shard_index)]

    def axis(self, name: str) -> np.ndarray:
        """The values of axis ``name``; a clear error if the config does not give it."""
        value = getattr(self, name, None)
        if value is None:
            raise ValidationError(f"sweep.{name}: missing (give values, or start, stop and num or step)")
        return value.grid(f"sweep.{name}", int(self.max_points))


@dataclasses.dataclass(frozen=True)
class OptimizeSettings:
    """How protocol parameters are optimized.

    Attributes:
        mu: the grid of signal intensities that ``key_rate_vs_distance`` searches at every point
            (:class:`Axis`; None keeps ``protocol.intensities[0]``).
        method: the finite-key studies' optimizer: ``gradient`` (:func:`qmc.optimize.maximize_sweep`)
            or ``search`` (the derivative-free :func:`qmc.optimize.random_search`).
        n_starts, continuation: gradient: runs per point, passes of restarts from the neighbours.
        solver, solver_options: the gradient optimizer's optax transformation by name: ``bfgs``
            (qmc's BFGS), ``lbfgs`` (``optax.lbfgs``), or any transformation of optax, with its
            arguments (``optimize.solver=adam '+optimize.solver_options={learning_rate: 0.05}'``);
            :func:`qmc.optimize.solver_from`.
        loop: where the gradient optimizer's loops run: ``host`` (Python around one compiled loss:
            the least to compile), ``device`` (one compiled program, lanes side by side) or
            ``auto`` (host on a CPU, device on an accelerator); :func:`qmc.optimize.maximize`.
        n_candidates, n_rounds, n_parents: search: candidates per point and round, refinement
            rounds, candidates refined in each round.
    """

    mu: Any = None
    enabled: bool = True  # false: the configured protocol is evaluated, not optimized (satellite studies)
    method: str = "gradient"
    n_starts: int = 2
    continuation: int = 4
    solver: str = "bfgs"
    solver_options: Any = None
    loop: str = "auto"
    n_candidates: int = 2048
    n_rounds: int = 8
    n_parents: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "mu", axis_or_none(self.mu))

    def checks(self):
        return [_one_of("method", METHODS), Check(_solver_problem), _one_of("loop", LOOPS), whole("n_starts", 1),
                whole("continuation", 0), whole("n_candidates", 1), whole("n_rounds", 0), whole("n_parents", 1)]

    def optimizer_kwargs(self, seed: int, protocol=None) -> dict:
        """``method`` and that method's settings as keywords of the finite-key optimizers
        (:func:`qmc.studies.finite_optimize.optimize_at`), with ``seed`` and, for a three-intensity
        ``protocol``, its fixed weakest decoy ``mu3`` (which must lie in [0, 0.05), Lim: 2e-4)."""
        out: dict[str, Any] = {"seed": int(seed)}
        if protocol is not None and np.size(protocol.intensities) == 3:
            mu3 = float(np.asarray(protocol.intensities)[2])
            if not 0.0 <= mu3 < 0.05:
                raise ValidationError(f"protocol.intensities[2] = {mu3:g} is out of range: the fixed weakest decoy "
                                      "mu3 must be in [0, 0.05) (Lim: 2e-4)")
            out["mu3"] = mu3
        if self.method == "search":
            out.update(n_candidates=int(self.n_candidates), n_rounds=int(self.n_rounds),
                       n_parents=int(self.n_parents))
        else:
            out.update(n_starts=int(self.n_starts), continuation=int(self.continuation), solver=self.solver,
                       solver_options=dict(self.solver_options or {}), loop=self.loop)
        return dict(out, method=self.method)


@dataclasses.dataclass(frozen=True)
class FiniteSettings:
    """The system model of the finite-key studies and their maximum-distance search.

    Attributes:
        model: ``exact`` (qmc's exact engine), ``lim2014`` (Lim et al.'s closed-form model with
            afterpulsing) or ``lim2014_as_printed`` (its misprinted error term).
        p_afterpulse: the afterpulse probability of ``lim2014`` (a list: one curve each, in
            ``one_vs_two_decoy``); 0 with ``exact``.
        max_distance: find the longest fiber with a key, per curve.
        max_distance_tol_km: its tolerance.
    """

    model: str = "exact"
    p_afterpulse: Any = 0.0
    max_distance: bool = True
    max_distance_tol_km: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.p_afterpulse, list):
            object.__setattr__(self, "p_afterpulse", tuple(self.p_afterpulse))

    def checks(self):
        return [_one_of("model", MODELS), Range("p_afterpulse", 0.0, 1.0, hi_open=True),
                Range("max_distance_tol_km", 0.0, lo_open=True)]


@dataclasses.dataclass(frozen=True)
class EngineComparisonSettings:
    """``decoy_bb84_mc``: which engines to compare (``exact``, ``block``, ``pulse``), and the
    confidence of the intervals."""

    engines: Any = ENGINES
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if isinstance(self.engines, list):
            object.__setattr__(self, "engines", tuple(self.engines))

    def checks(self):
        return [_all_of("engines", ENGINES), Range("confidence", 0.0, 1.0, lo_open=True, hi_open=True)]


@dataclasses.dataclass(frozen=True)
class SessionSettings:
    """``finite_key_mc``: sessions per point and rule, the rules (``until_full``, ``fixed_pulses``),
    the abort rule's phase-error tolerance (None: the expected-count bound plus ``phase_error_margin``)
    and the histogram bins."""

    n_sessions: int = 2000
    rules: Any = RULES
    phase_error_tolerance: float | None = None
    phase_error_margin: float = 0.01
    n_bins: int = 40

    def __post_init__(self) -> None:
        if isinstance(self.rules, (list, str)):
            object.__setattr__(self, "rules", (self.rules,) if isinstance(self.rules, str) else tuple(self.rules))

    def checks(self):
        out = [whole("n_sessions", 2), _all_of("rules", RULES), Range("phase_error_margin", 0.0), whole("n_bins", 1)]
        if self.phase_error_tolerance is not None:
            out.append(Range("phase_error_tolerance", 0.0, lo_open=True))
        return out


@dataclasses.dataclass(frozen=True)
class RepeaterMCSettings:
    """``repeater_chain``, ``memory_requirements``: Monte Carlo chains sampled per parameter point
    (``n_chains``) and the lanes that run them (``lanes``; None: chosen by
    :func:`qmc.repeaters.montecarlo.sample_points`)."""

    n_chains: int = 4000
    lanes: int | None = None

    def checks(self):
        return [whole("n_chains", 2), whole("lanes", 1, allow_none=True)]


@dataclasses.dataclass(frozen=True)
class PassSettings:
    """``satellite_pass``: Monte Carlo passes simulated for the distribution of the key per pass."""

    n_passes: int = 200

    def checks(self):
        return [whole("n_passes", 2)]


def _tle_line(field: str, number: str) -> Check:
    def problem(settings, prefix):
        line = getattr(settings, field)
        if isinstance(line, str) and line.strip().startswith(number + " ") and len(line.strip()) == 69:
            return None
        return f"{prefix}{field} = {line!r}: must be line {number} of a two-line element set (69 characters)"

    return Check(problem)


@dataclasses.dataclass(frozen=True)
class OrbitSettings:
    """``key_per_day``: the orbit as a two-line element set (``tle_line1``, ``tle_line2``), the
    window's start (``start_jd``, a UTC Julian date; None: the TLE's epoch) and length (``days``),
    and the grid step of the pass search (``search_step_s``)."""

    tle_line1: str = ""
    tle_line2: str = ""
    start_jd: float | None = None
    days: float = 1.0
    search_step_s: float = 20.0

    def checks(self):
        return [_tle_line("tle_line1", "1"), _tle_line("tle_line2", "2"), Range("days", 0.0, 31.0, lo_open=True),
                Range("search_step_s", 0.0, 600.0, lo_open=True),
                Rule("start_jd", lambda s, xp: xp.asarray(s.start_jd is None or 2.4e6 < float(s.start_jd) < 2.6e6),
                     "must be a UTC Julian date (e.g. 2458827.5) or null")]


@dataclasses.dataclass(frozen=True)
class StationSettings:
    """``key_per_day``: the ground station, geodetic latitude and longitude (deg, east positive)
    and height above the WGS 84 ellipsoid (m)."""

    latitude_deg: float = 0.0
    longitude_deg: float = 0.0
    altitude_m: float = 0.0

    def checks(self):
        return [Range("latitude_deg", -90.0, 90.0), Range("longitude_deg", -180.0, 360.0),
                Range("altitude_m", -500.0, 9000.0)]


@dataclasses.dataclass(frozen=True)
class ConsecutiveSessions:
    """``wdm_bursty_traffic``: sessions simulated one after another in time (each of the pulse
    engine's ``n_pulses``), so that traffic varying in time gives each its own noise."""

    n_sessions: int = 8

    def checks(self):
        return [whole("n_sessions", 1)]


@dataclasses.dataclass(frozen=True)
class CheckSettings:
    """``optimize_link``: block-engine sessions per finite-key optimum (0: no check)."""

    n_sessions: int = 1000

    def checks(self):
        return [whole("n_sessions", 0)]


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """``afterpulsing``: independent detector histories (a positive multiple of 4), tallied gates
    per stream, and untallied burn-in gates at the start of every stream."""

    n_streams: int = 2048
    n_gates: int = 2048
    burn_in_gates: int = 512

    def checks(self):
        return [whole("n_streams", 4), Rule("n_streams", lambda s, xp: xp.asarray(float(s.n_streams) % 4 == 0),
                                            "must be a positive multiple of 4"),
                whole("n_gates", 2), whole("burn_in_gates", 0)]


@dataclasses.dataclass(frozen=True)
class PlotSettings:
    """The run's figure: ``dpi``, the resolution of the PNG (a whole number in [50, 1200]; the PDF
    is vector graphics)."""

    dpi: int = 300

    def checks(self):
        def problem(settings, prefix):
            value, (lo, hi) = settings.dpi, DPI
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi
                  and float(value).is_integer())
            return None if ok else f"{prefix}dpi = {value!r} is out of range: must be a whole number in [{lo}, {hi}]"

        return [Check(problem)]


COVERAGE_EPS_SPLIT = 21  # the largest eps_sec / eps of the finite-key analyses (Lim: 21, Rusca: 19)


@dataclasses.dataclass(frozen=True)
class CoverageSettings:
    """``finite_key_coverage``: sessions per point, the failure probabilities ``eps`` at which the
    bounds are checked (every Hoeffding deviation and the phase-error sampling term use eps, so
    eps_sec = 21 eps for Lim and 19 eps for Rusca: each eps in (0, 1/21)), and the one-sided
    confidence of the failure-rate bounds (Clopper-Pearson)."""

    n_sessions: int = 100_000
    eps: Any = (1e-2, 1e-3)
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if isinstance(self.eps, (list, tuple)):
            object.__setattr__(self, "eps", tuple(self.eps))
        elif isinstance(self.eps, (int, float)) and not isinstance(self.eps, bool):
            object.__setattr__(self, "eps", (self.eps,))

    def checks(self):
        def eps_problem(settings, prefix):
            values = settings.eps if isinstance(settings.eps, tuple) else (settings.eps,)
            if not values:
                return f"{prefix}eps = []: needs at least one value in (0, 1/{COVERAGE_EPS_SPLIT})"
            for i, value in enumerate(values):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
                    0.0 < value < 1.0 / COVERAGE_EPS_SPLIT)
                if not ok:
                    return (f"{prefix}eps[{i}] = {value!r} is out of range: must be in (0, 1/{COVERAGE_EPS_SPLIT}) "
                            f"(eps_sec = {COVERAGE_EPS_SPLIT} eps must stay below 1)")
            return None

        return [whole("n_sessions", 10), Range("n_sessions", 10, 1_000_000), Check(eps_problem),
                Range("confidence", 0.5, 1.0, lo_open=True, hi_open=True)]
