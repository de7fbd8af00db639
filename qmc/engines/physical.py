"""The pulse engine's physical path: each pulse's photons drawn and routed, background clicks placed.

Independent of the exact engine's formulas (:mod:`qmc.engines.pulse` describes the path and its
Philox streams): Alice's class by one word, her photon number by inversion of the source's
photon-number distribution with a 64-bit uniform, each photon lost or routed to a detector with
one word, each detector's background (dark counts and the noise of classical traffic) as a
Bernoulli process drawn as geometric gaps; with traffic varying in time, the background of a
pulse's level by thinning.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from qmc.link import at_noise_level
from qmc.random import binomial, compact, philox, tables

__all__ = ["physical_tables", "cell_physical", "background_levels", "word_position"]

# Philox streams within a block (each stream is a sequence of block_pulses words).
_S_CLASS, _S_CLASS_LO, _S_NPH_HI, _S_NPH_LO = 0, 1, 2, 3  # class, photon number
_S_DARK = 8  # background clicks of detector d use stream 8 + d
_S_THIN = 10  # traffic varying in time: detector d's background acceptance, stream 10 + d
_S_FATE = 16  # photon j's fate uses stream 16 + 2 j, its rare lower word 17 + 2 j


def word_position(i, block_pulses: int):
    """(word, lane) of pulse ``i`` of a block in a Philox stream (four 32-bit words per counter)."""
    return jnp.divmod(i, block_pulses // 4)


def _select_rows(row, table):
    """table[row] for a small static table (R, ...) by a where-chain (a gather would stop XLA:CPU
    from vectorizing the surrounding loop)."""
    out = jnp.broadcast_to(table[0], row.shape + table.shape[1:])
    for r in range(1, table.shape[0]):
        out = jnp.where((row == r).reshape(row.shape + (1,) * (table.ndim - 1)), table[r], out)
    return out


def _lookup(level, table):
    """table[level]: a where-chain for a few levels (vectorizes on a CPU), a gather for many."""
    return _select_rows(level, table) if table.shape[0] <= 8 else table[level]


def _lt64(w_hi, w_lo, t_hi, t_lo):
    """64-bit comparison (w_hi, w_lo) < (t_hi, t_lo), t_hi in [0, 2**32] and t_lo (int64)."""
    h = w_hi.astype(jnp.int64)
    return (h < t_hi) | ((h == t_hi) & (w_lo.astype(jnp.int64) < t_lo))


def physical_tables(link, protocol, max_photons: int):
    """Threshold tables of the physical path (64-bit fixed point as (hi, lo) int64 pairs).

    Returns:
        ``t_class`` (thresholds of the 8k classes), ``(s_hi, s_lo)`` of P(n > j | mu_k), shape
        (k, max_photons), and ``t_fate`` of the photon fates (detector 0, detector 1, lost) for
        the routing rows (bit 0 matched, bit 1 matched, mismatched), shape (3, 2) each.
    """
    t_class = tables.thresholds64(protocol.class_probabilities().ravel())  # (8k - 1,)
    # P(n > j | mu_k) for j = 0 .. max_photons - 1, as suffix sums of the source's pmf (relative
    # precision kept for tiny tails); photons beyond max_photons are cut (see PulseEngine).
    n = jnp.arange(max_photons + 8, dtype=jnp.float64)
    mu = jnp.asarray(protocol.intensities, jnp.float64)
    pmf = link.source.photon_number_pmf(mu[:, None], n[None, :])  # (k, J + 8)
    tail = jnp.cumsum(pmf[:, ::-1], axis=1)[:, ::-1]  # P(n >= j)
    more = jnp.clip(tail[:, 1: max_photons + 1], 0.0, 1.0)  # P(n > j), (k, J)
    s_hi = jnp.floor(more * 2.0**32)
    s_lo = jnp.floor((more * 2.0**32 - s_hi) * 2.0**32)
    # Photon fate: (detector 0, detector 1, lost). Routing rows: bit 0 matched (detector 0 with
    # 1 - e_d), bit 1 matched (detector 0 with e_d), mismatched (either with 1/2).
    eta = link.transmittance()
    e_d = link.detector.misalignment
    f0 = jnp.stack([1.0 - e_d, e_d, jnp.full_like(e_d, 0.5)])
    fate = jnp.stack([eta * f0, eta * (1.0 - f0), jnp.broadcast_to(1.0 - eta, (3,))], axis=-1)
    t_fate = tables.thresholds64(fate)  # (3, 2) each
    return t_class, (s_hi.astype(jnp.int64), s_lo.astype(jnp.int64)), t_fate


def cell_physical(pkey, block_pulses: int, link, phys_tables, max_photons: int, photon_bins: bool,
                   method: str = "compare", background=None):
    """Cells of one block on the physical path.

    Photons 0 and 1 of every pulse are handled on the whole block (one fate word each, rare exact
    fix-ups); the few pulses with 3 or more photons (1.4 % at mu = 0.48) are compacted and their
    further photons drawn from the same words (``word_at``), with exact 64-bit comparisons.
    """
    t_class, (s_hi, s_lo), (f_hi, f_lo) = phys_tables
    w = philox.words(pkey, block_pulses, _S_CLASS)
    cls, amb = tables.categorical(w, t_class[0], method)

    def resolve_class(i):
        w_lo = philox.word_at(pkey, word_position(i, block_pulses), _S_CLASS_LO)
        return tables.categorical_exact(w[i], w_lo, t_class[0], t_class[1])

    cls = compact.fix_ambiguous(cls, amb, resolve_class)
    k_idx = cls // 8
    a, b, x = (cls // 4) % 2, (cls // 2) % 2, cls % 2
    route = jnp.where(a == b, x, 2)  # routing row: 0 / 1 matched by Alice's bit, 2 mismatched
    v_hi = philox.words(pkey, block_pulses, _S_NPH_HI)
    v_lo = philox.words(pkey, block_pulses, _S_NPH_LO)

    def has_photon(j, kk, vh, vl):  # photon j exists: n > j
        return _lt64(vh, vl, _select_rows(kk, s_hi[:, j]), _select_rows(kk, s_lo[:, j]))

    f_hi32 = jnp.minimum(f_hi, 0xFFFFFFFF).astype(jnp.uint32)  # (3, 2)
    t0 = _select_rows(route, f_hi32[:, 0])
    t1 = _select_rows(route, f_hi32[:, 1])
    det0 = jnp.zeros(block_pulses, bool)
    det1 = jnp.zeros(block_pulses, bool)
    n_ph = jnp.zeros(block_pulses, jnp.int32)
    for j in range(min(2, max_photons)):
        has = has_photon(j, k_idx, v_hi, v_lo)
        stream = _S_FATE + 2 * j
        u = philox.words(pkey, block_pulses, stream)
        fate = (u >= t0).astype(jnp.int32) + (u >= t1).astype(jnp.int32)
        amb = has & (fate > 0) & (u == jnp.where(fate == 2, t1, t0))

        def resolve_fate(i, u=u, stream=stream):
            u_lo = philox.word_at(pkey, word_position(i, block_pulses), stream + 1)
            return tables.categorical_exact(u[i], u_lo, f_hi[route[i]], f_lo[route[i]])

        fate = compact.fix_ambiguous(fate, amb, resolve_fate)
        det0 = det0 | (has & (fate == 0))
        det1 = det1 | (has & (fate == 1))
        n_ph = n_ph + has.astype(jnp.int32)

    if max_photons > 2:
        det0, det1, n_ph = _more_photons(
            pkey, block_pulses, has_photon(2, k_idx, v_hi, v_lo), (k_idx, route, v_hi, v_lo),
            has_photon, (f_hi, f_lo), (det0, det1, n_ph), max_photons,
        )
    # Background of each detector: dark counts or noise photons of classical traffic, independent
    # of each other, of the other detector (unpolarized Poisson noise split in two) and of Alice's
    # photons, so one Bernoulli(p_bg) per detector and gate; p_bg is p_dark without traffic.
    if background is None:
        p_bg = link.background_click_probability()
        dark0 = binomial.geometric_positions(pkey, _S_DARK, p_bg, block_pulses)
        dark1 = binomial.geometric_positions(pkey, _S_DARK + 1, p_bg, block_pulses)
    else:
        dark0, dark1 = _thinned_background(pkey, block_pulses, *background)
    outcome = (det0 | dark0).astype(jnp.int32) + 2 * (det1 | dark1).astype(jnp.int32)
    if photon_bins:
        return (cls * 3 + jnp.minimum(n_ph, 2)) * 4 + outcome
    return cls * 4 + outcome


def background_levels(link, factors):
    """Per-level background of the physical path: (p_max, acceptance thresholds) for thinning.

    Background clicks of a detector are drawn at the largest level's probability p_max and each
    kept with probability p_level / p_max (Lewis and Shedler, Naval Res. Logist. Q. 26, 403
    (1979): thinning a Bernoulli process realizes any smaller probability per trial exactly). The
    acceptance is a 32-bit comparison, int64 threshold floor(2**32 p_level / p_max): 2**32, always
    kept, at p_max itself.
    """
    p = jax.vmap(lambda f: at_noise_level(link, f).background_click_probability())(factors)
    p_max = jnp.max(p)
    ratio = jnp.where(p_max > 0, p / jnp.where(p_max > 0, p_max, 1.0), 0.0)
    keep = jnp.where(p == p_max, 2.0**32, jnp.floor(ratio * 2.0**32)).astype(jnp.int64)
    return p_max, keep


def _thinned_background(pkey, block_pulses, p_max, keep, level):
    """Background click masks of the two detectors, the probability varying with each pulse's level."""
    out = []
    for d in range(2):
        at_max = binomial.geometric_positions(pkey, _S_DARK + d, p_max, block_pulses)
        u = philox.words(pkey, block_pulses, _S_THIN + d).astype(jnp.int64)
        out.append(at_max & (u < _lookup(level, keep)))
    return out


def _more_photons(pkey, block_pulses, candidates, pulse, has_photon, fate_table, state, max_photons):
    """Photons 2, 3, ... of the pulses that have them, ``buf`` pulses at a time."""
    k_idx, route, v_hi, v_lo = pulse
    f_hi, f_lo = fate_table
    buf = max(64, block_pulses // 16)

    def one_batch(carry):
        cand, det0, det1, n_ph = carry
        idx = compact.first_true(cand, buf, block_pulses)
        valid = idx < block_pulses
        gi = jnp.minimum(idx, block_pulses - 1)
        kk, rr, vh, vl = k_idx[gi], route[gi], v_hi[gi], v_lo[gi]
        pos = word_position(gi, block_pulses)
        th, tl = f_hi[rr], f_lo[rr]  # (buf, 2)

        def photon(c):
            j, d0, d1, n, _ = c
            has = valid & has_photon(j, kk, vh, vl)
            stream = (_S_FATE + 2 * j).astype(jnp.uint32)
            u_hi = philox.word_at(pkey, pos, stream)
            u_lo = philox.word_at(pkey, pos, stream + 1)
            fate = tables.categorical_exact(u_hi, u_lo, th, tl)
            return (j + 1, d0 | (has & (fate == 0)), d1 | (has & (fate == 1)), n + has.astype(jnp.int32), jnp.any(has))

        zero = jnp.zeros(buf, bool)
        init = (jnp.int32(2), zero, zero, jnp.zeros(buf, jnp.int32), jnp.asarray(True))
        _, d0, d1, n, _ = lax.while_loop(lambda c: c[4] & (c[0] < max_photons), photon, init)
        det0 = det0.at[idx].set(det0[gi] | d0, mode="drop")
        det1 = det1.at[idx].set(det1[gi] | d1, mode="drop")
        n_ph = n_ph.at[idx].add(n, mode="drop")
        cand = cand.at[idx].set(False, mode="drop")
        return cand, det0, det1, n_ph

    _, det0, det1, n_ph = lax.while_loop(lambda c: jnp.any(c[0]), one_batch, (candidates,) + state)
    return det0, det1, n_ph
