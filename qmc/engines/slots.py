"""Monte Carlo of a pass: each time slot's fading drawn once, then that slot's pulses.

The fading of a free-space channel (:class:`qmc.freespace.channel.FreeSpaceChannel`) is slow
next to the pulse rate: within a slot every pulse sees the same drawn transmittance. A pass
(:class:`qmc.freespace.pass_link.PassLink`) is simulated slot by slot: X_s from the slot's fading
law, the slot's link frozen at X_s, then N_s pulses of it from the block engine (multinomial
counts: :func:`qmc.engines.block.sample_sessions`) or the pulse engine (per-pulse draws from the
slot's tables: :func:`qmc.engines.pulse.simulate`, the GPU kernel included), and the slots'
counts summed into the tally of the pass.

Randomness: the key of pass p is ``fold_in(key, p)``; slot s of it draws its fading from
``fold_in(fold_in(key_p, s), 0)`` and its pulses from ``fold_in(fold_in(key_p, s), 1)``, so a pass
and a slot are the same whatever the number of passes.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax

from qmc.engines.block import sample_sessions
from qmc.engines.pulse import simulate
from qmc.engines.tally import Tally

__all__ = ["frozen_slots", "pass_tallies_block", "pass_tally_pulse"]


def frozen_slots(key_pass, pass_link):
    """The slots' links, each frozen at one draw of its fading (S leading), and the draws X_s."""
    n_slots = jnp.shape(pass_link.slot_pulses)[-1]
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.fold_in(key_pass, s), 0))(jnp.arange(n_slots))
    links = pass_link.links
    x = jax.vmap(lambda k, ch: ch.fading.sample(k))(keys, links.channel)
    frozen = jax.vmap(lambda link, xs: dataclasses.replace(link, channel=link.channel.frozen(xs)))(links, x)
    return frozen, x


def _pulse_keys(key_pass, n_slots):
    return jax.vmap(lambda s: jax.random.fold_in(jax.random.fold_in(key_pass, s), 1))(jnp.arange(n_slots))


@jax.jit
def pass_tallies_block(key, pass_link, protocol, pass_index):
    """Sifted tallies of the passes ``pass_index`` (P,), each the sum of its slots' block-engine
    counts (multinomial per slot at the slot's drawn transmittance)."""
    n_slots = jnp.shape(pass_link.slot_pulses)[-1]

    def one(p):
        key_pass = jax.random.fold_in(key, p)
        frozen, _ = frozen_slots(key_pass, pass_link)
        tallies = jax.vmap(lambda k, link, n: sample_sessions(k, link, protocol, n, 1, True))(
            _pulse_keys(key_pass, n_slots), frozen, pass_link.slot_pulses)
        return jax.tree_util.tree_map(lambda c: jnp.sum(c, axis=(0, 1)), tallies)

    return jax.vmap(one)(jnp.asarray(pass_index))


def pass_tally_pulse(key, pass_link, protocol, pass_index: int = 0, **simulate_options):
    """The tally of pass ``pass_index`` from the pulse engine: slot by slot (``lax.map``), each
    slot's N_s pulses drawn from the tables of its frozen link; ``simulate_options`` go to
    :func:`qmc.engines.pulse.simulate` (path, chunk, block_pulses, methods; static)."""
    return _pass_tally_pulse(key, pass_link, protocol, pass_index, tuple(sorted(simulate_options.items())))


@functools.partial(jax.jit, static_argnames=("options",))
def _pass_tally_pulse(key, pass_link, protocol, pass_index, options):
    simulate_options = dict(options)
    key_pass = jax.random.fold_in(key, pass_index)
    frozen, _ = frozen_slots(key_pass, pass_link)
    n_slots = jnp.shape(pass_link.slot_pulses)[-1]

    def slot(args):
        k, link, n = args
        return simulate(k, link, protocol, n.astype(jnp.int64), **simulate_options).counts

    counts = lax.map(slot, (_pulse_keys(key_pass, n_slots), frozen, pass_link.slot_pulses))
    return Tally(jnp.sum(counts, axis=0))
