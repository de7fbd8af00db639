"""The repeater-chain Monte Carlo of :mod:`qmc.repeaters.montecarlo` in plain numpy.

Same model, same event-by-event algorithm (a link that loses its pair draws the round of its next
success as one geometric number; the loop jumps to the next success or cutoff), vectorized over
the chains still running, which are compacted as they finish. Different random numbers (numpy's
PCG64), so it agrees with the JAX version in distribution: the tests compare the two, and the
benchmark (:mod:`qmc.bench.repeaters`) times them side by side.

:func:`numpy_purifying_chains` is the model with purifying elementary links stepped round by round
(two memory pairs per link attempting each round, the purification when both hold a pair, the
pumping of fresh pairs): a direct transcription that the event-driven kernel is tested against.
"""

from __future__ import annotations

import numpy as np

from qmc.repeaters.montecarlo import _swap_blocks, policy_tables

__all__ = ["numpy_chains", "numpy_purifying_chains"]

BIG = np.int64(2**62)


def _components(conn):
    """same[c, i, k]: links i and k of chain c in one segment."""
    label = np.concatenate([np.zeros((len(conn), 1), np.int64), np.cumsum(~conn, axis=1)], axis=1)
    return label[:, :, None] == label[:, None, :]


def _storage_rounds(births, delivered, blocks):
    """Rounds the delivered pairs' qubits spent in memories: node j swapped at the latest birth of
    its two blocks' links (``blocks``), the end nodes held theirs until delivery."""
    n = births.shape[1]
    swapped = births[:, blocks].max(axis=-1) if n > 1 else np.zeros((len(births), 0), np.int64)
    left = np.concatenate([delivered[:, None], swapped], axis=1)
    right = np.concatenate([swapped, delivered[:, None]], axis=1)
    return (left - births).sum(axis=1) + (right - births).sum(axis=1)


def _swaps(rng, tables, q, b, conn, killed):
    """The swaps of one round, level by level (in place): a node whose two segments are complete
    swaps with probability q; a failed swap destroys both segments, whose links join ``killed``."""
    for bonds, links, inner in tables:
        up = b >= 0
        ready = up[:, links].all(axis=-1) & conn[:, inner].all(axis=-1) & ~conn[:, bonds]
        ok = rng.random(ready.shape) < q
        conn[:, bonds] |= ready & ok
        fail = ready & ~ok
        if fail.any():
            seed = np.zeros_like(up)
            seed[:, bonds] |= fail
            seed[:, bonds + 1] |= fail
            dead = (_components(conn) & seed[:, None, :]).any(axis=2) & up
            b[dead] = -1
            conn &= ~(dead[:, :-1] | dead[:, 1:])
            killed |= dead


def numpy_chains(rng: np.random.Generator, n_chains: int, n_links: int, p: float, q: float = 1.0,
                 cutoff_rounds: int | None = None, policy: str = "asap", max_rounds: int = 10**12,
                 by_round: bool = False):
    """(attempts, storage_rounds) of ``n_chains`` chains, each (n_chains,) int64, -1 if over the cap.

    ``by_round=True`` steps every round instead (each link without a pair draws a uniform per
    round): the model transcribed directly, same law, one iteration per round."""
    n = n_links
    cut = BIG if cutoff_rounds is None else np.int64(cutoff_rounds)
    tables = [t for t in policy_tables(n, policy) if len(t[0])]
    blocks = _swap_blocks(n, policy)
    log1mp = np.log1p(-min(p, 1.0))

    def geometric(size):
        u = rng.random(size)
        with np.errstate(divide="ignore"):
            x = np.floor(np.log(u) / log1mp) if p > 0 else np.full(size, float(max_rounds))
        return 1 + np.minimum(x, float(max_rounds)).astype(np.int64)

    attempts = np.full(n_chains, -1, np.int64)
    storage = np.full(n_chains, -1, np.int64)
    ids = np.arange(n_chains)
    nxt = geometric((n_chains, n))
    b = np.full((n_chains, n), -1, np.int64)
    conn = np.zeros((n_chains, n - 1), bool)
    r_now = np.zeros(n_chains, np.int64)
    while len(ids):
        up = b >= 0
        if by_round:
            r_now = r_now + 1
            nxt = np.where(~up & (rng.random(up.shape) < p), r_now[:, None], BIG)
        r_att = np.where(up, BIG, nxt).min(axis=1)
        if by_round:
            r_att = r_now
        if cutoff_rounds is None:
            r, expired = r_att, None
        else:
            same = _components(conn)
            bmin = np.where(same & up[:, None, :], b[:, None, :], BIG).min(axis=2)
            r_cut = np.where(up, np.minimum(bmin, BIG - cut - 1) + cut + 1, BIG).min(axis=1)
            r = np.minimum(r_att, r_cut)
            expired = up & (r[:, None] - bmin > cut)
        b = np.where(~up & (nxt == r[:, None]), r[:, None], b)
        killed = np.zeros_like(up)
        if expired is not None:
            b[expired] = -1
            conn &= ~(expired[:, :-1] | expired[:, 1:])
            killed |= expired
        _swaps(rng, tables, q, b, conn, killed)
        redraw = killed.any(axis=1)
        if redraw.any() and not by_round:
            g = geometric((int(redraw.sum()), n))
            nxt[redraw] = np.where(killed[redraw], r[redraw, None] + g, nxt[redraw])
        done = (b >= 0).all(axis=1) & conn.all(axis=1)
        r_now = r
        over = r > max_rounds
        finish = done | over
        if finish.any():
            fin = np.flatnonzero(finish & done)
            bf, rf = b[fin], r[fin]
            attempts[ids[fin]] = rf
            storage[ids[fin]] = _storage_rounds(bf, rf, blocks)
            keep = ~finish
            ids, nxt, b, conn, r_now = ids[keep], nxt[keep], b[keep], conn[keep], r_now[keep]
    return attempts, storage


def _purify(c1, c2, method):
    """(correlations, N) of ``method`` on pairs ``c1``, ``c2`` (..., 3), written out in numpy from the
    papers' coefficients (see :mod:`qmc.repeaters.purification`)."""
    def coefficients(c):  # the DEJMPS paper's A = Phi+, B = Psi-, C = Psi+, D = Phi-
        x, y, z = c[..., 0], c[..., 1], c[..., 2]
        return (1 + x + y + z) / 4, (1 - x + y - z) / 4, (1 + x - y - z) / 4, (1 - x - y + z) / 4

    a1, b1, c1_, d1 = coefficients(c1)
    a2, b2, c2_, d2 = coefficients(c2)
    if method == "bbpssw":
        e1, e2 = (1 - a1) / 3, (1 - a2) / 3
        n = a1 * a2 + a1 * e2 + e1 * a2 + 5 * e1 * e2
        w = (4 * (a1 * a2 + e1 * e2) / n - 1) / 3
        return np.stack([w, w, w], axis=-1), n
    n = (a1 + b1) * (a2 + b2) + (c1_ + d1) * (c2_ + d2)
    a, b = (a1 * a2 + b1 * b2) / n, (c1_ * d2 + d1 * c2_) / n
    c, d = (c1_ * c2_ + d1 * d2) / n, (a1 * b2 + b1 * a2) / n
    return np.stack([a + c - b - d, a - c + b - d, a - c - b + d], axis=-1), n


def numpy_purifying_chains(rng: np.random.Generator, n_chains: int, n_links: int, p: float, f: float, method: str,
                           rounds: int = 1, q: float = 1.0, x_dep: float = 1.0, x_deph: float = 1.0,
                           cutoff_rounds: int | None = None, policy: str = "asap"):
    """(attempts, storage_rounds, link correlations (n_chains, 3)) of chains whose links purify
    (``method``, ``rounds`` purifications per pair, Werner raw pairs of fidelity ``f``; ``x_dep``,
    ``x_deph``: a stored pair's decay per round), stepped round by round."""
    n = n_links
    cut = BIG if cutoff_rounds is None else np.int64(cutoff_rounds)
    tables = [t for t in policy_tables(n, policy) if len(t[0])]
    blocks = _swap_blocks(n, policy)
    c_raw = np.full(3, (4.0 * f - 1.0) / 3.0)
    attempts = np.full(n_chains, -1, np.int64)
    storage = np.full(n_chains, -1, np.int64)
    corr = np.zeros((n_chains, 3))
    ids = np.arange(n_chains)
    b = np.full((n_chains, n), -1, np.int64)
    conn = np.zeros((n_chains, n - 1), bool)
    r = np.zeros(n_chains, np.int64)
    # per link: births of the pairs in its two memory pairs (-1: none), purifications done, the kept pair
    b1, b2 = np.full((n_chains, n), -1, np.int64), np.full((n_chains, n), -1, np.int64)
    stage = np.zeros((n_chains, n), np.int64)
    kept = np.broadcast_to(c_raw, (n_chains, n, 3)).copy()

    def reset(mask):
        b1[mask], b2[mask], stage[mask], kept[mask] = -1, -1, 0, c_raw

    while len(ids):
        r = r + 1
        up = b >= 0
        now = r[:, None]
        down = ~up
        b1[:] = np.where(down & (b1 < 0) & (rng.random(up.shape) < p), now, b1)
        b2[:] = np.where(down & (b2 < 0) & (rng.random(up.shape) < p), now, b2)
        ready = down & (b1 >= 0) & (b2 >= 0)
        gap = np.abs(b1 - b2)
        dep, deph = x_dep ** gap, x_deph ** gap
        stored = kept * dep[..., None] * np.stack([deph, deph, np.ones_like(deph)], axis=-1)
        with np.errstate(all="ignore"):  # links not ready compute on their stale state, unused
            out, prob = _purify(stored, np.broadcast_to(c_raw, stored.shape), method)
        ok = ready & (rng.random(up.shape) < prob)
        stage[:] = np.where(ok, stage + 1, stage)
        kept[:] = np.where(ok[..., None], out, kept)
        born = ok & (stage == rounds)
        pump = ok & ~born
        b1[:] = np.where(pump, now, b1)  # the kept pair, born now, waits in memory pair 1
        b2[:] = np.where(pump, -1, b2)   # ... while pair 2 tries again
        reset(ready & ~ok)
        b = np.where(born, now, b)
        killed = np.zeros_like(up)
        if cutoff_rounds is not None:
            same = _components(conn)
            upn = b >= 0
            bmin = np.where(same & upn[:, None, :], b[:, None, :], BIG).min(axis=2)
            killed = upn & (now - bmin > cut)
            b[killed] = -1
            conn &= ~(killed[:, :-1] | killed[:, 1:])
        _swaps(rng, tables, q, b, conn, killed)
        reset(killed)
        done = (b >= 0).all(axis=1) & conn.all(axis=1)
        if done.any():
            fin = np.flatnonzero(done)
            bf, rf = b[fin], r[fin]
            attempts[ids[fin]] = rf
            storage[ids[fin]] = _storage_rounds(bf, rf, blocks)
            corr[ids[fin]] = kept[fin].prod(axis=1)
            keep = ~done
            ids, b, conn, r = ids[keep], b[keep], conn[keep], r[keep]
            b1, b2, stage, kept = b1[keep], b2[keep], stage[keep], kept[keep]
    return attempts, storage, corr
