"""An analysis applied to every session of a batch of tallies, each from its own counts."""

from __future__ import annotations

import jax
import numpy as np

from qmc._compile import jit

__all__ = ["key_rates_of_sessions", "session_outcomes"]


def key_rates_of_sessions(analysis, protocol, tally, link=None):
    """``analysis.key_rate_from_observations`` for every session of ``tally`` (traceable).

    Args:
        analysis: an observation-based analysis (a finite-key analysis reads each session's own
            pulse total and detections; its ``block_size`` is not used).
        protocol: the protocol the sessions ran.
        tally: a :class:`qmc.engines.Tally` or :class:`qmc.engines.SiftedTally` with one leading
            session axis (S,).
        link: only adds its validity check.

    Returns:
        The analysis' output with leading axis (S,).
    """
    return jax.vmap(lambda obs: analysis.key_rate_from_observations(obs, protocol, link))(tally.observations())


_key_rates_of_sessions = jit(key_rates_of_sessions)


def session_outcomes(analysis, protocol, tally, phase_error_tolerance: float | None = None) -> dict:
    """The finite-key outcome of every session of ``tally`` (leading axis), with the abort rule.

    Each session's counts go through ``analysis.key_rate_from_observations`` with its own pulse
    total (:func:`key_rates_of_sessions`). A session aborts when the analysis claims no key (a
    reason other than "ok": single-photon bound not positive, phase-error bound undefined,
    finite-size terms larger than the key, ...) or, when a tolerance is given, when its phase-error
    bound exceeds ``phase_error_tolerance`` (Lim et al. 2014, Sec. II, parameter estimation:
    phi_X < phi_tol).

    Returns:
        dict of (S,) numpy arrays: ``key_length`` (bits, floored; 0 when aborted), ``abort``,
        ``abort_no_key``, ``abort_phase_error``, ``reason`` (codes into
        :data:`qmc.analysis.REASONS`), ``phase_error``, ``n_key`` (key-basis detections),
        ``n_pulses`` and ``key_rate`` (key_length / n_pulses).
    """
    out = _key_rates_of_sessions(analysis, protocol, tally)
    reason = np.asarray(out.reason)
    phi = np.asarray(out.phase_error)
    no_key = reason != 0
    high_phi = np.zeros_like(no_key) if phase_error_tolerance is None else (phi > phase_error_tolerance)
    abort = no_key | high_phi
    length = np.where(abort, 0.0, np.floor(np.maximum(np.asarray(out.key_length), 0.0)))
    n = np.asarray(out.n_pulses)
    return {
        "key_length": length, "abort": abort, "abort_no_key": no_key, "abort_phase_error": high_phi & ~no_key,
        "reason": reason, "phase_error": phi, "n_key": np.asarray(out.n_key), "n_pulses": n,
        "key_rate": np.divide(length, n, out=np.zeros_like(length), where=n > 0),
    }
