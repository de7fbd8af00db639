"""The repeater-chain Monte Carlo of :mod:`qmc.repeaters.montecarlo` in plain numpy.

Same model, same event-by-event algorithm (a link that loses its pair draws the round of its next
success as one geometric number; the loop jumps to the next success or cutoff), vectorized over
the chains still running, which are compacted as they finish. Different random numbers (numpy's
PCG64), so it agrees with the JAX version in distribution: the tests compare the two, and the
benchmark (:mod:`qmc.bench.repeaters`) times them side by side.
"""

from __future__ import annotations

import numpy as np

from qmc.repeaters.montecarlo import _swap_blocks, policy_tables

__all__ = ["numpy_chains"]

BIG = np.int64(2**62)


def _components(conn):
    """same[c, i, k]: links i and k of chain c in one segment."""
    label = np.concatenate([np.zeros((len(conn), 1), np.int64), np.cumsum(~conn, axis=1)], axis=1)
    return label[:, :, None] == label[:, None, :]


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
            swapped = bf[:, blocks].max(axis=-1) if n > 1 else np.zeros((len(fin), 0), np.int64)
            left = np.concatenate([rf[:, None], swapped], axis=1)
            right = np.concatenate([swapped, rf[:, None]], axis=1)
            attempts[ids[fin]] = rf
            storage[ids[fin]] = (left - bf).sum(axis=1) + (right - bf).sum(axis=1)
            keep = ~finish
            ids, nxt, b, conn, r_now = ids[keep], nxt[keep], b[keep], conn[keep], r_now[keep]
    return attempts, storage
