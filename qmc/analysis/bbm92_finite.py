"""The finite-key rate of BBM92 (entanglement-based BB84) with composable security.

Tomamichel, Lim, Gisin, Renner, "Tight finite-key analysis for quantum cryptography", Nat. Commun.
3, 634 (2012), arXiv:1103.4130, Eq. (2) with the preparation quality q = 1 (both parties measure
in two mutually unbiased bases, so q = log2(1/c) = 1) and the statistical deviation mu defined
beside it: the protocol is eps_cor-correct and eps_sec-secret with a key of length

    l = n [1 - h(Q + mu)] - leak_EC - log2(2 / (eps_sec^2 eps_cor)),
    mu = sqrt((n + k) / (n k) * (k + 1) / k * ln(2 / eps_sec)),

where n is the number of sifted key-basis bits (both parties measured Z and both detected), k the
number of parameter-estimation bits (both measured X), Q the error rate of the k test bits (the
paper's tolerated error rate Q_tol; here the expected, or observed, test-basis error rate: no
abort threshold is modelled) and h the binary entropy (h(x) = 1 for x >= 1/2). The source is
basis-independent whatever it emits (Koashi-Preskill's squashing, as in Ma, Fung, Lo, PRA 76,
012307 (2007)), so no decoy states are needed: the paper's qubit analysis applies to the
coincidences of the pair source, a double click on either side getting a random bit.

qmc's conventions (those of :mod:`qmc.analysis.finite`):

* leak_EC = f_EC n h(E_Z), E_Z the key-basis error rate (Tomamichel's leak_EC = xi n h(Q) when both
  bases have the same error rate, as for this source);
* the key basis is Z (``BBM92.key_basis == "Z"``), X the test basis; both parties choose Z with
  probability ``p_z``, so after N pulse pairs n = N p_z^2 Q_Z and k = N (1 - p_z)^2 Q_X (Q_b the
  coincidence gain of matched basis b);
* the block is fixed by ``block_size`` = n (the sifted key bits: N = n / (p_z^2 Q_Z)) or, when given,
  by ``n_pulses`` = N; with observed counts (a Monte Carlo tally) the counts are used as they are;
* the rate is l / N secret bits per pulse pair; the key length is not floored (differentiable);
  where l is not positive the rate is 0 with its reason, never NaN.

As N grows, mu ~ sqrt(ln(2/eps_sec) / k) -> 0 and the security term / N -> 0, so l / N tends to
p_z^2 Q_Z [1 - h(E_X) - f_EC h(E_Z)]: :class:`qmc.analysis.BBM92Asymptotic` with the same p_z and
key basis Z.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass
from qmc.analysis.base import AbstractAnalysis
from qmc.analysis.keyrate import INVALID, NO_DETECTIONS, NOT_POSITIVE, OK, REASONS, KeyRate, h2
from qmc.engines import exact
from qmc.validation import Range, Rule

__all__ = ["BBM92Finite", "BBM92FiniteKeyRate", "statistical_deviation"]

FINITE_SIZE = REASONS.index("finite-size terms exceed the key: key length not positive")


def _safe_div(a, b):
    ok = b > 0.0
    return jnp.where(ok, a / jnp.where(ok, b, 1.0), 0.0)


def statistical_deviation(n_key, n_test, eps_sec):
    """mu = sqrt((n + k)/(n k) (k + 1)/k ln(2/eps_sec)) of Tomamichel et al. (2012), beside their
    Eq. (2): how far the key bits' phase-error rate can lie above the test bits' error rate,
    except with probability eps_sec. Infinite where n or k is not positive (no estimate)."""
    n, k = jnp.asarray(n_key, jnp.float64), jnp.asarray(n_test, jnp.float64)
    ok = (n > 0.0) & (k > 0.0)
    n_s, k_s = jnp.where(ok, n, 1.0), jnp.where(ok, k, 1.0)
    # (n + k)/(n k) written as 1/k + 1/n: no overflow of n k at huge blocks
    arg = (1.0 / k_s + 1.0 / n_s) * (1.0 + 1.0 / k_s) * jnp.log(2.0 / jnp.asarray(eps_sec, jnp.float64))
    return jnp.where(ok, jnp.sqrt(jnp.maximum(arg, 0.0)), jnp.inf)


@pytree_dataclass
class BBM92FiniteKeyRate(KeyRate):
    """A :class:`KeyRate` with the finite-key quantities behind it (``rate`` = l / N per pulse
    pair; ``gain``, ``qber``: Q_Z and E_Z; ``e1``: the phase-error bound E_X + mu).

    Attributes:
        key_length: l (bits), not floored; negative when no key can be extracted.
        n_pulses: N, pulse pairs of the block.
        n_key: n, sifted key bits (Z coincidences).
        n_test: k, parameter-estimation bits (X coincidences).
        test_qber: E_X, the error rate of the test bits.
        deviation: mu (:func:`statistical_deviation`).
        leak_ec: f_EC n h(E_Z) (bits).
        eps_sec: the secrecy parameter used.
        key_length_asymptotic: n [1 - h(E_X)] - leak_EC (no finite-size terms; diagnostic).
    """

    key_length: object = 0.0
    n_pulses: object = 0.0
    n_key: object = 0.0
    n_test: object = 0.0
    test_qber: object = 0.0
    deviation: object = 0.0
    leak_ec: object = 0.0
    eps_sec: object = 0.0
    key_length_asymptotic: object = 0.0


def _clean(x):
    return jnp.nan_to_num(jnp.asarray(x, jnp.float64), nan=0.0, posinf=jnp.inf, neginf=-jnp.inf)


def _in_unit(x):
    # Out-of-range values only reach the formula at invalid sweep points (rate 0, reason
    # "invalid"); replace them so that no logarithm of 0 or of a negative number is ever taken.
    x = jnp.asarray(x, jnp.float64)
    return jnp.where((x > 0.0) & (x < 1.0), x, 0.5)


@pytree_dataclass
class BBM92Finite(AbstractAnalysis):
    """Tomamichel, Lim, Gisin, Renner (2012), Eq. (2), for BBM92 (module docstring).

    Args:
        f_ec: error-correction inefficiency (leak_EC = f_EC n h(E_Z)).
        eps_sec, eps_cor: secrecy and correctness parameters.
        block_size: n, the sifted key bits of a block (N = n / (p_z^2 Q_Z) pulse pairs).
        n_pulses: N, pulse pairs of a block, when the block is fixed by its pulses (None: by
            ``block_size``).
    """

    f_ec: float = 1.16
    eps_sec: float = 1e-10
    eps_cor: float = 1e-15
    block_size: float = 1e9
    n_pulses: float | None = None
    name: ClassVar[str] = "bbm92_finite"
    finite: ClassVar[bool] = True
    uses_observations: ClassVar[bool] = True
    # the mean pair number and the basis bias trade key bits against test bits: both are free
    parameters: ClassVar[tuple[str, ...]] = ("mean_pair_number", "p_z")

    def checks(self):
        out = [Range("f_ec", 1.0), Range("eps_sec", 0.0, 1.0, lo_open=True, hi_open=True),
               Range("eps_cor", 0.0, 1.0, lo_open=True, hi_open=True), Range("block_size", 0.0, lo_open=True)]
        if self.n_pulses is not None:
            out.append(Range("n_pulses", 0.0, lo_open=True))
        return out

    def protocol_checks(self, protocol):
        return [Rule("key_basis", lambda p, xp: xp.asarray(p.key_basis == "Z"),
                     f"{self.name} needs key_basis 'Z' (X is the test basis of the phase error): set key_basis='Z'")]

    def counts(self, obs, protocol):
        """(N, n, k, key errors, test errors) of a block: expected (``obs.n_sent`` None) at
        ``n_pulses`` or ``block_size``, else the observed counts."""
        gain = jnp.asarray(obs.gain, jnp.float64)[..., 0, :]
        errors = jnp.asarray(obs.error_gain, jnp.float64)[..., 0, :]
        if obs.n_sent is not None:
            sent = jnp.asarray(obs.n_sent, jnp.float64)[..., 0, :]
            n_pulses = obs.n_pulses if obs.n_pulses is not None else jnp.sum(sent, axis=-1) / jnp.sum(
                protocol.basis_probabilities() ** 2)
            return jnp.asarray(n_pulses, jnp.float64), gain * sent, errors * sent
        pb = protocol.basis_probabilities()
        per_pulse = pb**2 * gain  # coincidences per pulse pair in matched basis Z, X
        if self.n_pulses is not None:
            n_pulses = jnp.asarray(self.n_pulses, jnp.float64)
        else:
            n_pulses = _safe_div(jnp.asarray(self.block_size, jnp.float64), per_pulse[..., 0])
        return n_pulses, n_pulses * per_pulse, n_pulses * pb**2 * errors

    def key_rate_from_observations(self, obs, protocol, link=None) -> BBM92FiniteKeyRate:
        """Key length and rate from expected (``Observations`` without ``n_sent``) or counted
        observations of :class:`qmc.protocols.BBM92`'s cells."""
        n_pulses, coincidences, errors = self.counts(obs, protocol)
        n_key, n_test = coincidences[..., 0], coincidences[..., 1]
        e_key, e_test = _safe_div(errors[..., 0], n_key), _safe_div(errors[..., 1], n_test)
        eps_sec, eps_cor = _in_unit(self.eps_sec), _in_unit(self.eps_cor)
        mu = statistical_deviation(n_key, n_test, eps_sec)
        leak = self.f_ec * n_key * h2(e_key)
        security = 1.0 - 2.0 * jnp.log2(eps_sec) - jnp.log2(eps_cor)  # log2(2 / (eps_sec^2 eps_cor))
        phase = jnp.minimum(e_test + mu, 0.5)  # h2 is 1 from 1/2 on; keeps mu = inf out of h2
        length = n_key * (1.0 - h2(phase)) - leak - security
        length_inf = n_key * (1.0 - h2(e_test)) - leak
        rate_raw = _safe_div(length, n_pulses)
        valid = self._valid(protocol, link)
        detected = (n_key > 0.0) & (n_test > 0.0) & (n_pulses > 0.0) & jnp.isfinite(n_pulses)
        reason = jnp.select(
            [~valid, ~detected, ~(rate_raw > 0.0) & (length_inf > 0.0), ~(rate_raw > 0.0)],
            [INVALID, NO_DETECTIONS, FINITE_SIZE, NOT_POSITIVE], OK).astype(jnp.int32)
        rate = jnp.where(reason == OK, rate_raw, 0.0)
        return BBM92FiniteKeyRate(
            rate=rate, reason=reason, e1=_clean(phase), gain=_clean(jnp.asarray(obs.gain, jnp.float64)[..., 0, 0]), qber=_clean(e_key),
            raw_rate=_clean(rate_raw), key_length=_clean(length), n_pulses=_clean(n_pulses), n_key=_clean(n_key),
            n_test=_clean(n_test), test_qber=_clean(e_test), deviation=_clean(mu), leak_ec=_clean(leak),
            eps_sec=_clean(eps_sec), key_length_asymptotic=_clean(length_inf))

    def key_rate(self, link, protocol) -> BBM92FiniteKeyRate:
        """Key rate from the exact engine's expected counts for ``link`` (a two-arm link)."""
        return self.key_rate_from_observations(exact.observations(link, protocol), protocol, link)

