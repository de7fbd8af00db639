"""The coincidence window of a two-arm link: what a pair and a dark count look like through it.

Alice and Bob keep, for every pulse slot, only the clicks inside a window of full width w around
the slot's expected arrival time, and a coincidence is a click of each inside it. Two effects:

* **Capture of a true coincidence** (timing jitter). The two photons of a pair are detected at
  times whose difference is Gaussian with standard deviation sigma, the combined jitter of both
  arms (detectors, electronics, the pair's own time spread: sigma^2 = sigma_A^2 + sigma_B^2). A
  pair is counted with probability

      c(w, sigma) = P(|t_A - t_B| < w / 2) = erf(w / (2 sqrt(2) sigma)),

  the Gaussian integral over (-w/2, w/2) (erf as in Abramowitz and Stegun, Eq. 7.1.1); with sigma = t_Delta / (2 sqrt(2 ln 2)) it is Neumann et al.'s window fraction
  erf(sqrt(ln 2) t_CC / t_Delta), t_Delta the FWHM jitter and t_CC = w (PRA 104, 022406 (2021)).
  It acts as a factor on Bob's arm efficiency (:meth:`qmc.entanglement.TwoArmLink.detection`):
  the window is read from Alice's click, and each of Bob's photons falls inside it independently
  (a photon outside is missed, and Bob's outcome in the slot is what the window holds).
* **Accidentals** (free-running detectors). Dark counts of rate R per detector are a Poisson
  process, so a detector fires in a window of width w with

      p = 1 - exp(-R w),

  which replaces the per-gate dark-count probability p_dark (Ma, Fung, Lo, PRA 76, 012307 (2007):
  Y0 = 1 - (1 - p)^2 per side, the background yield of one detection window). The accidental
  coincidences are then the table's, from the same closed form.

Scope: one window per pulse slot, shorter than the pulse period 1 / rep_rate (checked): a window
spanning several slots would count pairs of neighbouring pulses as accidentals, which is not
modelled. With the window null the link is gated, one coincidence per pulse slot with the
detectors' ``p_dark`` per gate, and nothing here is used.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.special import erf

from qmc.validation import Range, Rule

__all__ = ["window_capture", "window_dark_probability", "window_checks"]

NS_PER_S = 1e9
PS_PER_NS = 1e3


def window_capture(window_ns, timing_jitter_ps):
    """c = erf(w / (2 sqrt(2) sigma)): the probability that a pair's two detections fall within
    the full window ``window_ns`` of each other, with Gaussian combined jitter ``timing_jitter_ps``
    (standard deviation). No jitter: 1 for a positive window, 0 for a zero one. Broadcasts."""
    w_ps = jnp.asarray(window_ns, dtype=jnp.float64) * PS_PER_NS
    sigma = jnp.asarray(timing_jitter_ps, dtype=jnp.float64)
    jittered = sigma > 0.0
    x = w_ps / (2.0 * math.sqrt(2.0) * jnp.where(jittered, sigma, 1.0))
    return jnp.where(jittered, erf(x), jnp.where(w_ps > 0.0, 1.0, 0.0))


def window_dark_probability(dark_count_rate_hz, window_ns):
    """p = 1 - exp(-R w): a detector with Poisson dark counts of rate ``dark_count_rate_hz``
    fires in a window of ``window_ns`` (without cancellation for small R w). Broadcasts."""
    rw = jnp.asarray(dark_count_rate_hz, dtype=jnp.float64) * jnp.asarray(window_ns, dtype=jnp.float64) / NS_PER_S
    return -jnp.expm1(-rw)


def _window_ok(s, xp):
    if s.coincidence_window_ns is None:
        return xp.asarray(True)
    w = xp.asarray(s.coincidence_window_ns)
    period_ns = NS_PER_S / xp.asarray(s.rep_rate_hz)
    return (w >= 0.0) & (w < period_ns) & ~xp.isnan(w)


def _rate_ok(s, xp):
    if s.dark_count_rate_hz is None:
        return xp.asarray(True)
    r = xp.asarray(s.dark_count_rate_hz)
    return (r >= 0.0) & ~xp.isnan(r) & xp.asarray(s.coincidence_window_ns is not None)


def window_checks():
    """The checks of a pair source's window fields (:class:`qmc.entanglement.PairSource`)."""
    return [
        Rule("coincidence_window_ns,rep_rate_hz", _window_ok,
             "the coincidence window must be >= 0 and shorter than the pulse period 1e9 / rep_rate_hz ns "
             "(accidentals across pulse slots are not modelled), or null"),
        Range("timing_jitter_ps", 0.0),
        Rule("dark_count_rate_hz,coincidence_window_ns", _rate_ok,
             "the dark-count rate must be >= 0 (Hz per detector) and needs a coincidence window, or be null"),
    ]
