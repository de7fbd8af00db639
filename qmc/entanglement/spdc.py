"""Pulsed SPDC pair sources: pair-number statistics and where the source sits on the link.

The state of one pump pulse of a type-II SPDC source emitting polarization-entangled pairs into
one spatio-temporal mode is the two-mode squeezed state of Ma, Fung, Lo, PRA 76, 012307 (2007),
Eq. (4) ("thermal" statistics here):

    |Psi> = sum_n (n + 1)^(1/2) lambda^(n/2) / (1 + lambda)^(n/2 + 1) |Phi_n>,
    P(n) = (n + 1) lambda^n / (1 + lambda)^(n + 2),

with lambda = sinh^2(chi) (chi the squeezing parameter). It is the product of two independent
two-mode squeezed vacua, one per polarization mode pair (H_A H_B and V_A V_B for the Phi+ form
used here), each with a thermal photon number of mean lambda; so the mean pair number is

    mu = <n> = 2 lambda,     lambda = mu / 2.

A source emitting into many modes at once (a pulse much longer than the coherence time of the
pairs) has Poisson pair statistics, P(n) = e^-mu mu^n / n! ("poisson"): the many-mode limit of
the thermal state with the same mean, every pair a Bell pair in its own mode (no bunching).

``visibility`` is the source's intrinsic two-photon visibility V_s: its pairs' bits disagree in a
matched basis with probability (1 - V_s) / 2 before any channel (white noise of a Werner state
for a single pair). The link's misalignment e_d (Ma, Fung, Lo's intrinsic error of the pair, one
number for source and both arms) combines with it as two independent flips:
1 - 2 e = V_s (1 - 2 e_d) (:meth:`PairSource.pair_error`).

``coincidence_window_ns``, ``timing_jitter_ps`` and ``dark_count_rate_hz`` describe how the pairs
are counted (:mod:`qmc.entanglement.window`): they sit with the source because its pulse period
bounds the window and because both entanglement studies read the ``source`` group. Null window:
one coincidence per pulse slot with the receivers' per-gate ``p_dark``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import gammaln, xlogy

from qmc._pytree import pytree_dataclass, static
from qmc.entanglement.window import window_checks
from qmc.sources.base import wavelength_check
from qmc.validation import Range, Rule

__all__ = ["PairSource", "STATISTICS", "POSITIONS", "split_length", "pair_number_pmf"]

STATISTICS = ("thermal", "poisson")
POSITIONS = ("middle", "alice")


def pair_number_pmf(mean_pair_number, n, statistics: str = "thermal"):
    """P(n pairs in a pulse) of mean ``mean_pair_number`` = mu.

    thermal: (n + 1) lambda^n / (1 + lambda)^(n + 2), lambda = mu / 2 (Ma, Fung, Lo 2007, Eq. (5));
    poisson: e^-mu mu^n / n!. Evaluated in logarithms (no overflow for large n). Broadcasts.
    """
    mu = jnp.asarray(mean_pair_number, dtype=jnp.float64)
    n = jnp.asarray(n, dtype=jnp.float64)
    if statistics == "thermal":
        lam = mu / 2.0
        return jnp.exp(jnp.log1p(n) + xlogy(n, lam) - (n + 2.0) * jnp.log1p(lam))
    if statistics == "poisson":
        return jnp.exp(xlogy(n, mu) - mu - gammaln(n + 1.0))
    raise ValueError(f"statistics = {statistics!r}: must be one of {', '.join(STATISTICS)}")


def split_length(total_km, position: str = "middle", position_km=None):
    """The two arms' lengths (L_A, L_B) in km for a source on a link of ``total_km``.

    ``position_km`` (distance of the source from Alice) wins over ``position`` when given; it is
    clipped to [0, total_km] (a source beyond Bob's end is at Bob's end). ``position``: "middle"
    (L/2, L/2) or "alice" (0, L). Pure jnp: broadcasts and vmaps over ``total_km``.
    """
    total = jnp.asarray(total_km, dtype=jnp.float64)
    if position_km is not None:
        a = jnp.clip(jnp.asarray(position_km, dtype=jnp.float64), 0.0, total)
    elif position == "middle":
        a = total / 2.0
    elif position == "alice":
        a = jnp.zeros_like(total)
    else:
        raise ValueError(f"position = {position!r}: must be one of {', '.join(POSITIONS)}")
    return a, total - a


def _statistics_rule():
    return Rule("statistics", lambda s, xp: xp.asarray(s.statistics in STATISTICS),
                f"must be one of {', '.join(STATISTICS)}")


def _position_rule():
    return Rule("position", lambda s, xp: xp.asarray(s.position in POSITIONS),
                f"must be one of {', '.join(POSITIONS)}")


def _position_km_rule():
    def ok(s, xp):
        if s.position_km is None:
            return xp.asarray(True)
        x = xp.asarray(s.position_km)
        return (x >= 0.0) & ~xp.isnan(x)
    return Rule("position_km", ok, "must be >= 0 (km from Alice) or null")


@pytree_dataclass
class PairSource:
    """A pulsed source of polarization-entangled photon pairs (SPDC), one pump pulse per slot.

    Args:
        mean_pair_number: mu, the mean number of pairs per pulse; lambda = mu / 2 (module
            docstring).
        statistics: "thermal" (two-mode squeezed state, the default) or "poisson" (many modes).
        visibility: the source's intrinsic visibility V_s in [0, 1] (1: a perfect Bell state).
        rep_rate_hz: pulse repetition rate, to turn bits per pulse into bits per second.
        wavelength_nm: the pairs' wavelength (both photons; degenerate SPDC).
        position: "middle" or "alice": where the source sits when ``position_km`` is None.
        position_km: the source's distance from Alice in km (None: use ``position``).
        coincidence_window_ns: full width w of the coincidence window, ns, shorter than the pulse
            period 1e9 / rep_rate_hz (None: one coincidence per pulse slot, the detectors'
            per-gate p_dark; :mod:`qmc.entanglement.window`).
        timing_jitter_ps: sigma, the combined Gaussian timing jitter of both arms (standard
            deviation, ps): a pair is counted with erf(w / (2 sqrt(2) sigma)). Read only with a
            window.
        dark_count_rate_hz: dark-count rate R of each detector (both receivers), free-running
            detectors: p = 1 - exp(-R w) per window replaces p_dark (None: p_dark per gate).
            Needs a window.
    """

    mean_pair_number: float = 0.1
    statistics: str = static("thermal")
    visibility: float = 1.0
    rep_rate_hz: float = 1e9
    wavelength_nm: float = 1550.0
    position: str = static("middle")
    position_km: float | None = None
    coincidence_window_ns: float | None = None
    timing_jitter_ps: float = 0.0
    dark_count_rate_hz: float | None = None

    @property
    def pair_lambda(self):
        """lambda of Ma, Fung, Lo (2007): half the mean pair number."""
        return jnp.asarray(self.mean_pair_number) / 2.0

    def pair_number_pmf(self, n):
        """P(n pairs per pulse) (:func:`pair_number_pmf`)."""
        return pair_number_pmf(self.mean_pair_number, n, self.statistics)

    def arm_lengths_km(self, total_km):
        """(L_A, L_B): the lengths from the source to Alice and to Bob (:func:`split_length`)."""
        return split_length(total_km, self.position, self.position_km)

    def pair_error(self, misalignment):
        """e with 1 - 2 e = V_s (1 - 2 e_d): the link's misalignment e_d and the source's own
        visibility V_s as two independent flips of a pair's bits in a matched basis."""
        return 0.5 * (1.0 - jnp.asarray(self.visibility) * (1.0 - 2.0 * jnp.asarray(misalignment)))

    def checks(self):
        return [
            Range("mean_pair_number", 0.0),
            _statistics_rule(),
            Range("visibility", 0.0, 1.0),
            Range("rep_rate_hz", 0.0, lo_open=True),
            wavelength_check(),
            _position_rule(),
            _position_km_rule(),
            *window_checks(),
        ]
