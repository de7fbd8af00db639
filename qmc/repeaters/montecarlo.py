"""The Monte Carlo of a repeater chain over attempt rounds, event by event, batched over chains and points.

The model, one round at a time (all elementary links attempt in parallel each round):

1. every link without a pair attempts; each succeeds with probability p (a heralded pair is
   born at the end of the round);
2. cutoff: a stored segment (links joined by swaps, or one link) whose oldest pair is more than
   ``cutoff_rounds = floor(cutoff_s / attempt_time)`` rounds old is discarded;
3. swaps: with ``asap`` a node swaps as soon as both its links hold pairs; with ``nested`` a
   level-l node swaps once the segments of 2^(l-1) links on both sides are complete (levels in
   order, all within the round); a swap succeeds with probability q = swap_probability *
   memory.efficiency^2, and a failed one destroys both segments it touched;
4. the chain is done when one segment spans it: ``attempts`` is the round (counted from 1).

Links that lose their pair attempt again from the next round. Since attempts are independent
and memoryless, a link's next success is drawn as one geometric number of rounds when it goes
down, and the loop jumps from event to event (a success, or a segment reaching the cutoff):
the same law as stepping every round, in a number of iterations set by the events.

Memory time: a qubit is stored from its pair's herald to the swap at its node (or to delivery at
an end node). For the delivered pair, node j swapped at the latest birth among the links of its
two blocks (asap: links j and j+1), so the total qubit storage ``storage_rounds`` follows from the
final births; the delivered state (:mod:`qmc.repeaters.states`) is the product of the links'
correlations times the decay of ``storage_rounds * attempt_time`` seconds.

Random numbers: each lane draws from its own SplitMix64 stream (Steele, Lea, Flood, OOPSLA 2014:
a counter times the golden gamma through a 64-bit mixer, which passes BigCrush), seeded by
Philox4x32 (:mod:`qmc.random.philox`) of (key, lane); two 32-bit uniforms per output word
(SplitMix64 costs about a fifth of Philox4x32-10 per word, which was most of an iteration).

Batching: a lane runs chains one after another until it has done its share, so the lanes stay
busy (no chain waits for the slowest of a batch). Lanes of all parameter points form one explicit
batch axis (:func:`sample_points`); a vmap would turn the loop's rare branches (a failed swap, an
expired segment) into selects computed every iteration. Points use the same lane numbers, so a
sweep has common random numbers across its points.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from qmc._pytree import pytree_dataclass, static
from qmc.random.philox import philox4x32, philox_key
from qmc.repeaters.chain import Chain, Memory, nested_levels

__all__ = ["ChainSamples", "sample_chains", "sample_points", "default_lanes", "chain_parameters", "policy_tables", "lane_chains",
           "DEFAULT_MAX_ROUNDS"]

BIG = np.int64(2**62)
DEFAULT_MAX_ROUNDS = 10**12  # a chain that needs more rounds is abandoned (not delivered)
DEFAULT_MAX_EVENTS = 20_000  # ... or more events (successes and cutoffs)
_TAG = 0x52505452  # "RPTR": the Philox counter's last word
_GAMMA, _MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@pytree_dataclass
class ChainSamples:
    """Per chain: ``attempts`` (rounds until delivery, from 1; minus the rounds run if abandoned) and
    ``storage_rounds`` (total rounds its delivered pair's qubits spent in memories)."""

    attempts: object
    storage_rounds: object
    n_links: int = static(1)


def policy_tables(n_links: int, policy: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per swap level (one for asap): (bonds, links of the two blocks, internal bonds of the blocks).

    Bond j joins link j and link j + 1 (0-based). asap: every bond, blocks of one link each;
    nested level l (h = 2^(l-1)): bonds j = h (2k + 1) - 1, blocks of h links on each side."""
    if n_links < 2:
        return [(np.zeros(0, np.int32), np.zeros((0, 2), np.int32), np.zeros((0, 0), np.int32))]
    if policy == "asap":
        bonds = np.arange(n_links - 1)
        return [(bonds, np.stack([bonds, bonds + 1], -1), np.zeros((n_links - 1, 0), np.int64))]
    out = []
    for level in range(1, nested_levels(n_links) + 1):
        h = 2 ** (level - 1)
        bonds = np.arange(h - 1, n_links - 1, 2 * h)
        links = np.stack([np.arange(j - h + 1, j + h + 1) for j in bonds])
        inner = np.stack([np.array([i for i in range(j - h + 1, j + h) if i != j], np.int64) for j in bonds])
        out.append((bonds, links, inner.reshape(len(bonds), 2 * h - 2)))
    return out


def _swap_blocks(n_links: int, policy: str) -> np.ndarray:
    """For each bond, the links whose latest birth is the round it swapped at (its two blocks)."""
    width = 2
    for bonds, links, _ in policy_tables(n_links, policy):
        width = max(width, links.shape[1]) if len(bonds) else width
    rows = np.zeros((max(n_links - 1, 0), width), np.int64)
    for bonds, links, _ in policy_tables(n_links, policy):
        for j, row in zip(bonds, links):
            rows[j] = np.resize(row, width)  # repeats links: the max is unchanged
    return rows


def _sweep(x, conn, op):
    """Reduce ``x`` (N, B) with ``op`` over each segment (links joined by ``conn`` (N-1, B)) and give
    every link its segment's value: a forward then a backward pass over the links (N static)."""
    n = x.shape[0]
    fwd = [x[0]]
    for i in range(1, n):
        fwd.append(jnp.where(conn[i - 1], op(fwd[-1], x[i]), x[i]))
    out = [fwd[-1]]
    for i in range(n - 2, -1, -1):
        out.append(jnp.where(conn[i], out[-1], fwd[i]))
    return jnp.stack(out[::-1])


class _Levels:
    """The swap levels of a policy as static slices of the (links, lanes) arrays: asap is one level
    of every bond with one-link blocks; nested level l has blocks of 2h = 2^l links whose middle
    bond swaps once the block's links all hold pairs and its other bonds are joined."""

    def __init__(self, n: int, policy: str):
        self.n = n
        self.widths = [] if n < 2 else [2] if policy == "asap" else [2**l for l in range(1, nested_levels(n) + 1)]
        self.asap = policy == "asap"

    def blocks(self, x, width):  # (N, B) -> (N / width, width, B)
        return x.reshape(self.n // width, width, x.shape[-1])

    def bonds(self, conn, width):  # bonds of each block: (N / width, width, B), last one padding
        pad = jnp.concatenate([conn, jnp.zeros_like(conn[:1])])
        return self.blocks(pad, width)

    def place(self, middle, width):  # (N / width, B) at each block's middle bond -> (N - 1, B)
        h = width // 2
        zeros = jnp.zeros((middle.shape[0], h - 1, middle.shape[1]), middle.dtype)
        full = jnp.concatenate([zeros, middle[:, None], zeros, jnp.zeros_like(middle[:, None])], axis=1)
        return full.reshape(self.n, middle.shape[1])[:-1]

    def ready(self, up, conn, width):
        """(bonds that swap now (N - 1, B)) at this level."""
        if self.asap:
            return up[:-1] & up[1:] & ~conn
        h = width // 2
        inner = np.ones(width, bool)
        inner[[h - 1, width - 1]] = False
        bonds = self.bonds(conn, width)
        ok = jnp.all(self.blocks(up, width), axis=1) & jnp.all(bonds[:, inner], axis=1)
        return self.place(ok & ~bonds[:, h - 1], width)

    def swapped_at(self, b):
        """Per bond, the latest birth among the links of its two blocks: the round it swapped at."""
        if self.asap:
            return jnp.maximum(b[:-1], b[1:])
        out = jnp.zeros((self.n - 1, b.shape[1]), b.dtype)
        for width in self.widths:
            out = out + self.place(jnp.max(self.blocks(b, width), axis=1), width)
        return out


def lane_chains(pkey, lane, p, cutoff_rounds, q, n_links: int, policy: str, chains: int,
                max_rounds: int = DEFAULT_MAX_ROUNDS, cutoff: bool = True, max_events: int = DEFAULT_MAX_EVENTS):
    """``chains`` chains run one after another in each of B lanes: (attempts, storage_rounds), (chains, B).

    ``lane`` (B,) uint32 lane numbers (the random stream of each lane), ``p`` (B,) success
    probability per attempt, ``cutoff_rounds`` (B,) (BIG for none), ``q`` (B,) swap success
    probability (memory efficiency included); ``cutoff=False`` leaves the cutoff out of the program.
    A chain still running after ``max_rounds`` rounds or ``max_events`` events is abandoned: its
    attempts are written as minus the rounds it ran (0 < -attempts), so that the summary can count
    its time. The lanes are one explicit batch axis (the minor one; not a vmap) so that the rare branches (a
    failed swap, an expired segment) run only in the iterations where some lane needs them."""
    n = n_links
    levels = _Levels(n, policy)
    n_words = 2 * n - 1
    p = jnp.asarray(p, jnp.float64)
    n_lanes = p.shape[0]
    log1mp = jnp.log1p(-jnp.minimum(p, 1.0))
    inv = jnp.where(log1mp < 0.0, 1.0 / jnp.where(log1mp < 0.0, log1mp, -1.0), 0.0)[None, :]  # (1, B): per lane
    cutoff_rounds = jnp.asarray(cutoff_rounds, jnp.int64)[None, :]
    q = jnp.asarray(q, jnp.float64)[None, :]
    hi, lo = philox4x32(pkey[0], pkey[1], jnp.asarray(lane, jnp.uint32), 0, 0, _TAG)[:2]
    seed = ((hi.astype(jnp.uint64) << np.uint64(32)) | lo.astype(jnp.uint64))[None, :]  # the lane's stream
    lanes_index = jnp.arange(n_lanes)

    n_hash = -(-n_words // 2)
    word = jnp.arange(n_hash, dtype=jnp.uint64)[:, None]

    def uniforms(it, tag):  # SplitMix64 outputs it * n_hash + word + tag * 2^40 of the lane's stream
        z = seed + (it.astype(jnp.uint64) * np.uint64(n_hash) + word + np.uint64(tag << 40)) * _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
        w = jnp.concatenate([(z >> np.uint64(32)).astype(jnp.uint32), z.astype(jnp.uint32)], axis=0)[:n_words]
        return (w.astype(jnp.float64) + 0.5) * 2.0**-32

    def geometric(u):  # rounds until the next success, >= 1 (p = 0: over the cap)
        x = jnp.where(inv < 0.0, jnp.floor(jnp.log(u) * inv), float(max_rounds))
        return 1 + jnp.minimum(x, float(max_rounds)).astype(jnp.int64)

    def destroy(b, conn, dead):
        return jnp.where(dead, -1, b), conn & ~(dead[:-1] | dead[1:])

    def body(state):
        it, nxt, b, conn, k, att, sto, events = state
        u = uniforms(it, 0)
        ug, us = u[:n], u[n:]
        up = b >= 0
        r_att = jnp.min(jnp.where(up, BIG, nxt), axis=0, keepdims=True)
        killed = jnp.zeros_like(up)
        if cutoff:
            bmin = _sweep(jnp.where(up, b, BIG), conn, jnp.minimum)
            expiry = jnp.where(up, jnp.minimum(bmin, BIG - cutoff_rounds - 1) + cutoff_rounds + 1, BIG)
            r = jnp.minimum(r_att, jnp.min(expiry, axis=0, keepdims=True))
            killed = up & (r - bmin > cutoff_rounds)
            b, conn = lax.cond(jnp.any(killed), destroy, lambda b, c, d: (b, c), b, conn, killed)
        else:
            r = r_att
        b = jnp.where(~up & (nxt == r), r, b)
        for width in levels.widths:
            up = b >= 0
            ready = levels.ready(up, conn, width)
            ok = us < q
            conn = conn | (ready & ok)
            fail = ready & ~ok

            def failed(b, conn, killed, fail=fail):
                seed = jnp.concatenate([fail, fail[-1:] & False]) | jnp.concatenate([fail[:1] & False, fail])
                dead = _sweep(seed, conn, jnp.logical_or) & (b >= 0)
                b, conn = destroy(b, conn, dead)
                return b, conn, killed | dead

            b, conn, killed = lax.cond(jnp.any(fail), failed, lambda b, c, k: (b, c, k), b, conn, killed)
        nxt = jnp.where(killed, r + geometric(ug), nxt)
        done = jnp.all(b >= 0, axis=0, keepdims=True) & jnp.all(conn, axis=0, keepdims=True)
        over = (r > max_rounds) | (events >= max_events)[None, :]
        finish = done | over
        swapped_at = levels.swapped_at(b)
        storage = 2 * (jnp.sum(swapped_at, axis=0, keepdims=True) + r - jnp.sum(b, axis=0, keepdims=True))
        slot = jnp.where(finish[0] & (k < chains), k, chains)  # row `chains`: nowhere (dropped)
        att = att.at[slot, lanes_index].set(jnp.where(done, r, -jnp.maximum(r, 1))[0], mode="drop")
        sto = sto.at[slot, lanes_index].set(jnp.where(done, storage, -1)[0], mode="drop")
        b = jnp.where(finish, -1, b)
        conn = conn & ~finish
        nxt = jnp.where(finish, geometric(ug), nxt)
        return it + 1, nxt, b, conn, k + finish[0].astype(jnp.int64), att, sto, jnp.where(finish[0], 0, events + 1)

    nxt0 = geometric(uniforms(jnp.int64(0), 1)[:n])
    state = (jnp.int64(0), nxt0, jnp.full((n, n_lanes), -1, jnp.int64), jnp.zeros((n - 1, n_lanes), bool),
             jnp.zeros(n_lanes, jnp.int64), jnp.full((chains, n_lanes), -1, jnp.int64),
             jnp.full((chains, n_lanes), -1, jnp.int64), jnp.zeros(n_lanes, jnp.int64))
    out = lax.while_loop(lambda s: jnp.any(s[4] < chains), body, state)
    return out[5], out[6]


def chain_parameters(chain: Chain, memory: Memory):
    """(p, cutoff_rounds, q) of the kernel for one parameter point (traceable)."""
    p = chain.success_probability()
    q = chain.swap_probability * memory.efficiency**2
    if memory.cutoff_s is None:
        cut = jnp.asarray(BIG)
    else:
        tau = chain.attempt_time_s()
        rounds = jnp.where(tau > 0.0, jnp.floor(memory.cutoff_s / jnp.where(tau > 0.0, tau, 1.0)), 2.0**62)
        cut = jnp.minimum(rounds, 2.0**61).astype(jnp.int64)
    return p, cut, q


def default_lanes(n_chains: int) -> int:
    """Lanes run side by side: about 64 chains each, at most 4096 (CPU) or 2^16 (accelerators)."""
    cap = 4096 if jax.default_backend() == "cpu" else 2**16
    return int(max(1, min(cap, -(-n_chains // 64))))


def sample_points(key, chain: Chain, memory: Memory, n_points: int, n_chains: int, lanes: int | None = None,
                  max_rounds: int = DEFAULT_MAX_ROUNDS, max_events: int = DEFAULT_MAX_EVENTS) -> ChainSamples:
    """``n_chains`` chains at each of ``n_points`` points: ``chain`` and ``memory`` have leaves of
    leading size ``n_points`` (or scalars). Traceable; (n_points, n_chains) arrays.

    Points and lanes are one batch of ``n_points * lanes`` lanes; every point's lanes use the same
    lane numbers, so points share random numbers (common random numbers across a sweep)."""
    lanes = default_lanes(n_chains) if lanes is None else int(lanes)
    per_lane = -(-n_chains // lanes)
    pkey = philox_key(key, 0x52455045)
    p, cut, q = (jnp.broadcast_to(x, (n_points,)) for x in chain_parameters(chain, memory))
    att, sto = lane_chains(pkey, jnp.tile(jnp.arange(lanes, dtype=jnp.uint32), n_points), jnp.repeat(p, lanes),
                           jnp.repeat(cut, lanes), jnp.repeat(q, lanes), n_links=chain.n_links,
                           policy=chain.policy, chains=per_lane, max_rounds=max_rounds,
                           cutoff=memory.cutoff_s is not None, max_events=max_events)
    def per_point(x):  # (per_lane, n_points * lanes) -> (n_points, chains)
        x = x.reshape(per_lane, n_points, lanes).transpose(1, 2, 0)
        return x.reshape(n_points, lanes * per_lane)[:, :n_chains]

    return ChainSamples(per_point(att), per_point(sto), chain.n_links)


@functools.partial(jax.jit, static_argnames=("n_chains", "lanes", "max_rounds", "max_events"))
def sample_chains(key, chain: Chain, memory: Memory, n_chains: int, lanes: int | None = None,
                  max_rounds: int = DEFAULT_MAX_ROUNDS, max_events: int = DEFAULT_MAX_EVENTS) -> ChainSamples:
    """``n_chains`` independent chains of one parameter point: (n_chains,) arrays."""
    s = sample_points(key, chain, memory, 1, n_chains, lanes, max_rounds, max_events)
    return ChainSamples(s.attempts[0], s.storage_rounds[0], s.n_links)
