"""How the classical traffic's power varies in time: constant, on/off bursts, a measured trace.

A profile multiplies the launch power of every classical channel by a factor f(t) >= 0; Raman
scattering and leakage are linear in the launch power (:mod:`qmc.channels.raman`), so the noise
photons per gate at time t are f(t) times those at the configured ``launch_power_dbm``. That
launch power is the power while a channel sends (f = 1): a burst's peak, a trace's maximum.

The exact engine and every i.i.d. engine see the **mean** noise, f replaced by its time average
(:meth:`mean_factor`); the pulse engine gives each pulse the factor of its emission time
t_i = i / ``source.rep_rate_hz``, so pulses within a burst share its noise. The time axis is cut
into **levels**: a profile has a fixed number of distinct factors (:meth:`factors`, static in
number) and maps a pulse's index to the level it is emitted in (:meth:`level_of`), in exact
integer arithmetic, so that the pulses per level of any window are known exactly
(:meth:`pulses_per_level`) and the Monte Carlo tally can be checked against the exact tables of
the levels.

* :class:`Constant`: one level, factor ``factor`` (1: the configured power).
* :class:`Bursts`: periodic on/off traffic, on for ``burst_s``, period ``burst_s / duty_cycle``;
  levels (off, on) = (0, 1). Duty cycle 1 is on all the time: the constant traffic, bit for bit.
* :class:`Trace`: a measured power trace on a uniform time grid, repeated; one level per sample,
  factor P(t) / max P.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from qmc._pytree import pytree_dataclass, static
from qmc.validation import Range, Rule, ValidationError

__all__ = ["Constant", "Bursts", "Trace", "PROFILES", "floor_div", "pulse_count"]


def pulse_count(duration_s, rep_rate_hz):
    """Pulses emitted in ``duration_s`` at ``rep_rate_hz``, rounded to a whole number (at least 1), int64."""
    return jnp.maximum(jnp.round(jnp.asarray(duration_s, jnp.float64) * rep_rate_hz), 1.0).astype(jnp.int64)


def floor_div(r, d):
    """Exact ``(r // d, r % d)`` of non-negative whole numbers below 2**52, as float64 arrays.

    Pulse indices as float64 (exact below 2**53): the quotient from a multiply by 1 / d, then
    corrected by one step each way, every product an exact integer. Integer division and 64-bit
    integer multiplies do not vectorize on a CPU; float64 arithmetic does, which keeps a pulse's
    level a few operations.
    """
    r = jnp.asarray(r).astype(jnp.float64)
    d = jnp.asarray(d).astype(jnp.float64)
    q = jnp.floor(r * (1.0 / d))
    m = r - q * d
    q = jnp.where(m < 0, q - 1.0, jnp.where(m >= d, q + 1.0, q))
    return q, r - q * d


@pytree_dataclass
class Constant:
    """Traffic at a constant power: ``factor`` times the configured launch power (one level)."""

    factor: float = 1.0
    n_levels = 1

    def checks(self):
        return [Range("factor", 0.0)]

    def mean_factor(self, rep_rate_hz=None):
        return jnp.asarray(self.factor, jnp.float64)

    def factors(self):
        return jnp.reshape(jnp.asarray(self.factor, jnp.float64), (1,))

    def level_of(self, index, rep_rate_hz):
        """The level of pulse ``index`` (whole numbers, int64 or float64): always 0."""
        return jnp.zeros(jnp.shape(index), jnp.int32)

    def pulses_per_level(self, start, n_pulses, rep_rate_hz):
        return jnp.reshape(jnp.asarray(n_pulses, jnp.int64), (1,))


@pytree_dataclass
class Bursts:
    """Periodic on/off traffic: on (factor 1) for ``burst_s``, off (factor 0) for the rest of each
    period ``burst_s / duty_cycle``, starting ``phase_s`` into a period at pulse 0.

    Durations become whole numbers of pulses at the source's repetition rate (burst
    round(burst_s rate), period round(burst_s rate / duty_cycle)), so duty cycle 1 is on at every
    pulse. Packet traffic on an optical data link (bursts of frames between idle gaps) is the
    case in mind; the mean factor is the realized duty cycle, burst / period in pulses.
    """

    duty_cycle: float = 0.5
    burst_s: float = 1e-3
    phase_s: float = 0.0
    n_levels = 2

    def checks(self):
        return [Range("duty_cycle", 0.0, 1.0, lo_open=True), Range("burst_s", 0.0, lo_open=True),
                Range("phase_s", 0.0)]

    def _pulses(self, rep_rate_hz):
        burst = pulse_count(self.burst_s, rep_rate_hz)
        period = jnp.maximum(pulse_count(self.burst_s / jnp.asarray(self.duty_cycle, jnp.float64), rep_rate_hz), burst)
        phase = jnp.round(jnp.asarray(self.phase_s, jnp.float64) * rep_rate_hz).astype(jnp.int64)
        return burst, period, phase

    def mean_factor(self, rep_rate_hz=None):
        """The time average of f: the duty cycle, as realized in whole pulses when ``rep_rate_hz`` is given."""
        if rep_rate_hz is None:
            return jnp.asarray(self.duty_cycle, jnp.float64)
        burst, period, _ = self._pulses(rep_rate_hz)
        return burst.astype(jnp.float64) / period.astype(jnp.float64)

    def factors(self):
        return jnp.asarray([0.0, 1.0], jnp.float64)

    def level_of(self, index, rep_rate_hz):
        """1 for pulses emitted in a burst, 0 between bursts."""
        burst, period, phase = self._pulses(rep_rate_hz)
        _, within = floor_div(jnp.asarray(index).astype(jnp.float64) + phase.astype(jnp.float64), period)
        return (within < burst.astype(jnp.float64)).astype(jnp.int32)

    def pulses_per_level(self, start, n_pulses, rep_rate_hz):
        """Pulses of [start, start + n_pulses) between bursts and in bursts, exactly."""
        burst, period, phase = self._pulses(rep_rate_hz)

        def on_before(i):  # pulses in bursts among the indices [0, i) shifted by the phase
            q, m = (x.astype(jnp.int64) for x in floor_div(i + phase, period))
            q0, m0 = (x.astype(jnp.int64) for x in floor_div(phase, period))
            return q * burst + jnp.minimum(m, burst) - (q0 * burst + jnp.minimum(m0, burst))

        start = jnp.asarray(start, jnp.int64)
        n = jnp.asarray(n_pulses, jnp.int64)
        on = on_before(start + n) - on_before(start)
        return jnp.stack([n - on, on])


@pytree_dataclass
class Trace:
    """A measured power trace: ``power_w`` sampled every ``step_s`` seconds, held within each step
    and repeated after the last sample. One level per sample, factor P / max P (the configured
    launch power is the trace's maximum). :meth:`from_csv` reads one.

    Args:
        power_w: the trace's samples (any unit of power: only ratios are used), shape (n,).
        step_s: the sampling step of the trace, s.
        path: where the trace was read from (for the run's metadata), or ``None``.
    """

    power_w: object = None
    step_s: float = 1e-3
    path: str | None = static(None)

    def __post_init__(self):
        if self.power_w is None:  # Trace(path=...): read the file (a config gives only the path)
            if self.path is None:
                raise ValidationError("classical.profile: a trace needs power_w (and step_s) or a path to a CSV")
            read = Trace.from_csv(self.path)
            object.__setattr__(self, "power_w", read.power_w)
            object.__setattr__(self, "step_s", read.step_s)

    @property
    def n_levels(self) -> int:
        return int(np.shape(self.power_w)[0])

    def checks(self):
        return [Range("step_s", 0.0, lo_open=True),
                Rule("power_w", lambda t, xp: xp.all(xp.asarray(t.power_w) >= 0) & xp.any(xp.asarray(t.power_w) > 0),
                     "must be >= 0 and not all 0")]

    @classmethod
    def from_csv(cls, path: str | Path) -> "Trace":
        """A trace from a CSV with a header ``time_s`` and ``power_mw`` (or ``power_w`` or
        ``power_dbm``): uniformly spaced times in increasing order; '#' lines are comments.
        Raises :class:`ValidationError` naming ``classical.profile.path`` for a bad file."""
        key = "classical.profile.path"
        try:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(line for line in f if line.strip() and not line.startswith("#")))
        except OSError as err:
            raise ValidationError(f"{key} = {str(path)!r}: cannot read it ({err.strerror})") from None
        columns = set(rows[0]) if rows else set()
        unit = next((c for c in ("power_w", "power_mw", "power_dbm") if c in columns), None)
        if "time_s" not in columns or unit is None:
            raise ValidationError(f"{key} = {str(path)!r}: needs columns time_s and one of power_w, power_mw, "
                                  f"power_dbm (found {sorted(columns)})")
        try:
            t = np.array([float(r["time_s"]) for r in rows])
            p = np.array([float(r[unit]) for r in rows])
        except ValueError as err:
            raise ValidationError(f"{key} = {str(path)!r}: not a number ({err})") from None
        if unit == "power_dbm":
            p = 1e-3 * 10.0 ** (p / 10.0)
        elif unit == "power_mw":
            p = 1e-3 * p
        steps = np.diff(t)
        if len(t) < 2 or not np.all(np.isfinite(t)) or np.any(steps <= 0) or \
                np.max(np.abs(steps - steps.mean())) > 1e-6 * steps.mean():
            raise ValidationError(f"{key} = {str(path)!r}: time_s must be at least two increasing, uniformly "
                                  f"spaced times")
        if not np.all(np.isfinite(p)) or np.any(p < 0) or not np.any(p > 0):
            raise ValidationError(f"{key} = {str(path)!r}: {unit} must be finite, >= 0 and not all 0")
        return cls(p, float(steps.mean()), str(path))

    def factors(self):
        p = jnp.asarray(self.power_w, jnp.float64)
        return p / jnp.max(p)

    def mean_factor(self, rep_rate_hz=None):
        """The time average of f (the trace's samples all last one step)."""
        return jnp.mean(self.factors())

    def level_of(self, index, rep_rate_hz):
        """The trace sample a pulse is emitted in (the trace repeats)."""
        q, _ = floor_div(index, pulse_count(self.step_s, rep_rate_hz))
        return floor_div(q, self.n_levels)[1].astype(jnp.int32)

    def pulses_per_level(self, start, n_pulses, rep_rate_hz):
        """Pulses of [start, start + n_pulses) in each sample of the trace, exactly."""
        step = pulse_count(self.step_s, rep_rate_hz)
        period = step * self.n_levels
        j = jnp.arange(self.n_levels, dtype=jnp.int64)

        def before(i):  # pulses in sample j among the indices [0, i)
            q, m = (x.astype(jnp.int64) for x in floor_div(i, period))
            return q * step + jnp.clip(m - j * step, 0, step)

        start = jnp.asarray(start, jnp.int64)
        return before(start + jnp.asarray(n_pulses, jnp.int64)) - before(start)


PROFILES = (Constant, Bursts, Trace)
