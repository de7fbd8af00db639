"""The Monte Carlo of a repeater chain over attempt rounds, event by event, batched over chains and points.

The model, one round at a time (all elementary links attempt in parallel each round):

1. every link without a pair attempts; each succeeds with probability p (a heralded pair is
   born at the end of the round; with m memories per node side, m attempts in parallel:
   1 - (1 - p)^m; with purification, see below);
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

Elementary links with purification (``chain.purification``, two memories per node side): a link
without a pair runs, in parallel on its two memory pairs, attempts until both hold a heralded pair
(max(G1, G2) rounds for two geometric numbers); the earlier pair's two qubits wait |G1 - G2|
rounds meanwhile and decay with the memory law (:class:`~qmc.repeaters.chain.Memory`), then the
two are purified (:mod:`qmc.repeaters.purification`): with the success probability N of that
map the kept pair moves on, otherwise both are lost and the link starts again. With
``purification_rounds`` k > 1, the kept pair then waits in one memory pair while the other makes a
fresh pair (G rounds, the kept pair decaying), which is pumped into it, k - 1 times; a failure at
any step starts the link again. The pair after the last step is the link's pair: it is born
(enters the chain's model above at that round; the cutoff counts from there, a raw pair
waiting for its partner is not discarded), and it carries its own
correlations, which multiply over the chain. Each trial (its end a purification) is an event of
the loop. The classical exchange of the purification's outcomes, like the swaps', is counted
within the round.

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
from qmc.repeaters import states
from qmc.repeaters.chain import Chain, Memory, nested_levels
from qmc.repeaters.purification import purify

__all__ = ["ChainSamples", "sample_chains", "sample_points", "default_lanes", "chain_parameters", "link_parameters",
           "policy_tables", "lane_chains", "DEFAULT_MAX_ROUNDS"]

BIG = np.int64(2**62)
DEFAULT_MAX_ROUNDS = 10**12  # a chain that needs more rounds is abandoned (not delivered)
DEFAULT_MAX_EVENTS = 20_000  # ... or more events (successes and cutoffs)
_TAG = 0x52505452  # "RPTR": the Philox counter's last word
_GAMMA, _MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@pytree_dataclass
class ChainSamples:
    """Per chain: ``attempts`` (rounds until delivery, from 1; minus the rounds run if abandoned),
    ``storage_rounds`` (total rounds its delivered pair's qubits spent in memories, counted from
    the links' pairs' births) and ``link_correlations`` (chains, 3): the product over its links of
    their pairs' correlations at birth (after purification); None: every link's pair is the
    Werner pair of ``chain.fidelity()`` (no purification)."""

    attempts: object
    storage_rounds: object
    n_links: int = static(1)
    link_correlations: object = None


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
                max_rounds: int = DEFAULT_MAX_ROUNDS, cutoff: bool = True, max_events: int = DEFAULT_MAX_EVENTS,
                purification: str | None = None, rounds: int = 1, link=None):
    """``chains`` chains run one after another in each of B lanes: (attempts, storage_rounds, link
    correlations), (chains, B) and (chains, B, 3) (None without purification).

    ``lane`` (B,) uint32 lane numbers (the random stream of each lane), ``p`` (B,) success
    probability per attempt, ``cutoff_rounds`` (B,) (BIG for none), ``q`` (B,) swap success
    probability (memory efficiency included); ``cutoff=False`` leaves the cutoff out of the program.
    ``purification`` (``bbpssw``, ``dejmps``; static) makes each link's pair by the purification
    process of the module docstring, ``rounds`` purifications per pair, with ``link`` = (c (B, 3)
    the raw pair's correlations, (dep, deph) (B,) the decay factors of a stored pair per round).
    A chain still running after ``max_rounds`` rounds or ``max_events`` events is abandoned: its
    attempts are written as minus the rounds it ran (0 < -attempts), so that the summary can count
    its time. The lanes are one explicit batch axis (the minor one; not a vmap) so that the rare branches (a
    failed swap, an expired segment) run only in the iterations where some lane needs them."""
    n = n_links
    levels = _Levels(n, policy)
    pur = purification is not None
    n_words = 4 * n - 1 if pur else 2 * n - 1  # purification: a second geometric and a uniform per link
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

    if pur:
        c_raw = jnp.asarray(link[0], jnp.float64)[None]  # (1, B, 3)
        x_dep, x_deph = (jnp.asarray(x, jnp.float64)[None, :] for x in link[1])

    def restart(u, r, mask, lk):  # links in `mask` start over: two raw pairs from round r
        nxt, gap, stage, cs = lk
        g1, g2 = geometric(u[:n]), geometric(u[2 * n - 1:3 * n - 1])
        return (jnp.where(mask, r + jnp.maximum(g1, g2), nxt), jnp.where(mask, jnp.abs(g1 - g2), gap),
                jnp.where(mask, 0, stage), jnp.where(mask[..., None], c_raw, cs))

    def purify_step(u, r, arrive, lk):
        """Links whose trial ends at r purify: (born (N, B), the links' state after)."""
        nxt, gap, stage, cs = lk
        g = gap.astype(jnp.float64)
        stored = states.decay(cs, x_dep**g, x_deph**g)  # the earlier pair waited `gap` rounds
        out, prob = purify(stored, jnp.broadcast_to(c_raw, cs.shape), purification)
        ok = arrive & (u[3 * n - 1:] < prob)
        stage = jnp.where(ok, stage + 1, stage)
        cs = jnp.where(ok[..., None], out, cs)
        born = ok & (stage == rounds)
        pump = ok & ~born  # the kept pair waits for one fresh pair
        g1 = geometric(u[:n])
        nxt, gap = jnp.where(pump, r + g1, nxt), jnp.where(pump, g1, gap)
        return born, restart(u, r, arrive & ~ok, (nxt, gap, stage, cs))

    def body(state):
        it, nxt, b, conn, k, att, sto, events = state[:8]
        u = uniforms(it, 0)
        ug, us = u[:n], u[n:2 * n - 1]
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
        if pur:
            gap, stage, cs, cor = state[8:]
            born, (nxt, gap, stage, cs) = purify_step(u, r, ~up & (nxt == r), (nxt, gap, stage, cs))
            b = jnp.where(born, r, b)
        else:
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
        if pur:
            nxt, gap, stage, cs = restart(u, r, killed, (nxt, gap, stage, cs))
        else:
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
        head = (it + 1, nxt, b, conn, k + finish[0].astype(jnp.int64), att, sto, jnp.where(finish[0], 0, events + 1))
        if not pur:
            return head[:1] + (jnp.where(finish, geometric(ug), nxt),) + head[2:]
        cor = cor.at[slot, lanes_index].set(jnp.where(done[0, :, None], jnp.prod(cs, axis=0), 0.0), mode="drop")
        nxt, gap, stage, cs = restart(u, 0, finish, (nxt, gap, stage, cs))
        return head[:1] + (nxt,) + head[2:] + (gap, stage, cs, cor)

    u0 = uniforms(jnp.int64(0), 1)
    state = (jnp.int64(0), geometric(u0[:n]), jnp.full((n, n_lanes), -1, jnp.int64), jnp.zeros((n - 1, n_lanes), bool),
             jnp.zeros(n_lanes, jnp.int64), jnp.full((chains, n_lanes), -1, jnp.int64),
             jnp.full((chains, n_lanes), -1, jnp.int64), jnp.zeros(n_lanes, jnp.int64))
    if pur:
        zero = jnp.zeros((n, n_lanes), jnp.int64)
        lk = restart(u0, 0, jnp.ones((n, n_lanes), bool), (zero, zero, zero, jnp.zeros((n, n_lanes, 3))))
        state = state[:1] + lk[:1] + state[2:] + lk[1:] + (jnp.zeros((chains, n_lanes, 3)),)
    out = lax.while_loop(lambda s: jnp.any(s[4] < chains), body, state)
    return out[5], out[6], (out[11] if pur else None)


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


def link_parameters(chain: Chain, memory: Memory):
    """(c, (dep, deph)) of a purifying link (traceable): the raw pair's correlations (..., 3) and
    the decay factors of a stored pair (both qubits) per round, ``memory.decay(2 attempt_time)``."""
    return states.werner(chain.fidelity()), memory.decay(2.0 * chain.attempt_time_s())


def default_lanes(n_chains: int) -> int:
    """Lanes run side by side: about 64 chains each, at most 4096 (CPU) or 2^16 (accelerators)."""
    cap = 4096 if jax.default_backend() == "cpu" else 2**16
    return int(max(1, min(cap, -(-n_chains // 64))))


def sample_points(key, chain: Chain, memory: Memory, n_points: int, n_chains: int, lanes: int | None = None,
                  max_rounds: int = DEFAULT_MAX_ROUNDS, max_events: int = DEFAULT_MAX_EVENTS,
                  devices: tuple | None = None) -> ChainSamples:
    """``n_chains`` chains at each of ``n_points`` points: ``chain`` and ``memory`` have leaves of
    leading size ``n_points`` (or scalars). Traceable; (n_points, n_chains) arrays.

    Points and lanes are one batch of ``n_points * lanes`` lanes; every point's lanes use the same
    lane numbers, so points share random numbers (common random numbers across a sweep).
    ``devices`` (a tuple of local devices, :func:`qmc._devices.resolve`; static): the lanes are
    split over them (``shard_map``, padded to a multiple of their count with copies of the last
    lane, dropped after), each device running its lanes' loop; a lane's chains depend only on its
    own random stream, so the samples are one device's bit for bit."""
    lanes = default_lanes(n_chains) if lanes is None else int(lanes)
    per_lane = -(-n_chains // lanes)
    pkey = philox_key(key, 0x52455045)
    p, cut, q = (jnp.broadcast_to(x, (n_points,)) for x in chain_parameters(chain, memory))
    link = None
    if chain.purification is not None:
        c, (dep, deph) = link_parameters(chain, memory)
        link = (jnp.repeat(jnp.broadcast_to(c, (n_points, 3)), lanes, axis=0),
                tuple(jnp.repeat(jnp.broadcast_to(x, (n_points,)), lanes) for x in (dep, deph)))
    elif chain.memories_per_node > 1:  # parallel attempts; the first heralded pair is kept
        p = -jnp.expm1(chain.memories_per_node * jnp.log1p(-p))
    lane_arrays = (jnp.tile(jnp.arange(lanes, dtype=jnp.uint32), n_points), jnp.repeat(p, lanes), jnp.repeat(cut, lanes),
                   jnp.repeat(q, lanes))
    options = dict(n_links=chain.n_links, policy=chain.policy, chains=per_lane, max_rounds=max_rounds,
                   cutoff=memory.cutoff_s is not None, max_events=max_events, purification=chain.purification,
                   rounds=chain.purification_rounds)
    if devices is None:
        att, sto, cor = lane_chains(pkey, *lane_arrays, link=link, **options)
    else:
        att, sto, cor = _split_lanes(pkey, lane_arrays, link, options, devices)

    def per_point(x):  # (per_lane, n_points * lanes, ...) -> (n_points, chains, ...)
        tail = x.shape[2:]
        x = x.reshape((per_lane, n_points, lanes) + tail)
        x = jnp.moveaxis(x, 0, 2)
        return x.reshape((n_points, lanes * per_lane) + tail)[:, :n_chains]

    return ChainSamples(per_point(att), per_point(sto), chain.n_links, None if cor is None else per_point(cor))


def _split_lanes(pkey, lane_arrays, link, options, devices):
    """:func:`lane_chains` with its lanes split over ``devices`` (:func:`sample_points`)."""
    from qmc._devices import padded_size, split_map

    n_lanes = lane_arrays[0].shape[0]
    pad = padded_size(n_lanes, len(devices)) - n_lanes
    flat, tree = jax.tree_util.tree_flatten((lane_arrays, link))
    flat = [jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x for x in flat]

    def per_device(*args):  # the device's lanes; outputs with the lanes first, to be joined
        (lane, p, cut, q), lk = jax.tree_util.tree_unflatten(tree, args[:-1])
        att, sto, cor = lane_chains(args[-1], lane, p, cut, q, link=lk, **options)
        return att.T, sto.T, (jnp.zeros((lane.shape[0], 0)) if cor is None else jnp.moveaxis(cor, 1, 0))

    att, sto, cor = split_map(per_device, devices, n_split=len(flat))(*flat, pkey)
    cor = None if options["purification"] is None else jnp.moveaxis(cor[:n_lanes], 0, 1)
    return att[:n_lanes].T, sto[:n_lanes].T, cor


def sample_chains(key, chain: Chain, memory: Memory, n_chains: int, lanes: int | None = None,
                  max_rounds: int = DEFAULT_MAX_ROUNDS, max_events: int = DEFAULT_MAX_EVENTS,
                  devices: int | None = None) -> ChainSamples:
    """``n_chains`` independent chains of one parameter point: (n_chains,) arrays. ``devices``:
    the local devices the lanes are split over (None: all of them, :mod:`qmc._devices`)."""
    from qmc._devices import resolve

    return _sample_chains(key, chain, memory, n_chains, lanes, max_rounds, max_events, resolve(devices))


@functools.partial(jax.jit, static_argnames=("n_chains", "lanes", "max_rounds", "max_events", "devices"))
def _sample_chains(key, chain, memory, n_chains, lanes, max_rounds, max_events, devices) -> ChainSamples:
    s = sample_points(key, chain, memory, 1, n_chains, lanes, max_rounds, max_events, devices)
    cor = None if s.link_correlations is None else s.link_correlations[0]
    return ChainSamples(s.attempts[0], s.storage_rounds[0], s.n_links, cor)
