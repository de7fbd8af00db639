"""The fast path's chunk in one GPU kernel (Pallas, lowered to Triton): generator, alias draw and
tally fused, each pulse's cell counted in registers.

Why: with XLA the fast path is a kernel that writes every pulse's cell to memory and a one-hot
reduction that reads it back and compares it with each of the 96 cells, and the reduction costs
about as much as the draw (docs/benchmarks/). Here a program
draws ``step`` counters' words at a time (four pulses per Philox counter), finds each pulse's cell
in the alias table (:func:`tables.alias_draw`), and counts them with byte-packed counters
held in registers: each of the step's 128 lanes has one 32-bit word per group of four cells, and
cell ``4 g + o`` (class g, outcome o) adds ``1 << 8 o`` to its lane's word of group g. A pulse
costs one compare-and-add per group (a quarter of the cells), and no thread exchanges anything:
each program writes its lanes' words (1.5 bytes per pulse) and XLA unpacks and sums them. A byte
never carries: a lane gets at most 4 pulses a step, and a program has 16 steps (64 < 256; other
shapes: :func:`counters_per_program` refuses 64 steps or more).
The rare ambiguous draws (the alias cut's upper bits equal, 2**(k - 32) per pulse) are resolved
in the kernel by :func:`tables.alias_exact` with the same second word: a program that met one
tallies its pulses again, all exactly (one program in about 4000 at 96 cells). The kernel calls
the same :func:`philox.philox4x32`, :func:`tables.alias_draw` and
:func:`tables.alias_exact` as the XLA path (the table refs are indexed like arrays).

The cells are those of ``pulse._cells_fast``, word for word, so the counts equal the XLA path's
bit for bit (tested in interpret mode, which runs the kernel on any backend, slowly). Pallas is
imported only when this kernel is asked for.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from qmc.random import philox, tables

__all__ = ["available", "chunk_counts", "counters_per_program"]

_STEP = 128  # counters per step: the lanes of a program's vectors
_WARPS = 4  # warps of 32 threads per program: one lane per thread at 128 lanes
_COUNTERS = 2048  # counters per program (8192 pulses): enough programs per chunk to fill a GPU,
# few enough steps (16) that a byte counter, at most 4 pulses a step, stays below 256
# (These three change only the speed, never a count: qmc/bench/gpu/variants.py times other values.)


def available() -> bool:
    """Whether this JAX has Pallas's Triton backend, which the kernel needs on a GPU (deprecated in
    JAX 0.11 in favour of Mosaic GPU, to be removed in a later release)."""
    try:
        from jax.experimental.pallas import triton  # noqa: F401
    except ImportError:
        return False
    return True


def counters_per_program(block_pulses: int) -> tuple[int, int]:
    """(counters per program, counters per step) for a block: powers of two dividing the block's
    ``block_pulses / 4`` counters (a Triton vector's length is a power of two)."""
    quarter = block_pulses // 4
    c = _COUNTERS
    while c > 1 and quarter % c:
        c //= 2
    if c < 16:
        raise ValueError(f"block_pulses = {block_pulses}: the fused kernel needs a multiple of 64")
    step = min(_STEP, c)
    if 4 * (c // step) >= 256:  # a lane's byte counter gets at most 4 pulses a step
        raise ValueError(f"{c // step} steps of {step} counters per program: a byte counter could carry (at most 63)")
    return c, step


def _kernel(key_ref, entry_ref, t_ref, out_ref, *, quarter: int, counters: int, step: int,
            n_groups: int, stream_hi: int, stream_lo: int):
    from jax.experimental import pallas as pl

    k0, k1, n_valid = key_ref[0], key_ref[1], key_ref[2].astype(jnp.int32)
    first = pl.program_id(1) * counters

    def body(s, carry, exact: bool):
        acc, seen = carry
        acc = list(acc)
        i = first + s * step + lax.iota(jnp.int32, step)  # counters of this step
        iu = i.astype(jnp.uint32)
        words = philox.philox4x32(k0, k1, iu, stream_hi, 0, 0)
        lows = philox.philox4x32(k0, k1, iu, stream_lo, 0, 0) if exact else words
        for j, (w, w_lo) in enumerate(zip(words, lows)):
            cell, amb = tables.alias_draw(w, entry_ref)  # the refs are read like arrays
            valid = j * quarter + i < n_valid  # pulse positions past n_pulses are not counted
            if exact:
                cell = jnp.where(amb, tables.alias_exact(w, w_lo, entry_ref, t_ref), cell)
            else:
                seen = seen | (valid & amb).astype(jnp.int32)
            g = jnp.where(valid, cell >> 2, n_groups)
            one = jnp.left_shift(jnp.uint32(1), (8 * (cell & 3)).astype(jnp.uint32))
            for gi in range(n_groups):  # one vector per group: elementwise, no layout changes
                acc[gi] = acc[gi] + jnp.where(g == gi, one, jnp.uint32(0))
        return tuple(acc), seen

    def tally(exact: bool):
        init = (tuple(jnp.zeros(step, jnp.uint32) for _ in range(n_groups)), jnp.zeros(step, jnp.int32))
        return lax.fori_loop(jnp.int32(0), jnp.int32(counters // step),
                             functools.partial(body, exact=exact), init)

    # Per (group, lane) byte counters, kept in registers over the program's steps: each step
    # adds at most 4 to a byte, 4 * steps < 256. A program that met an ambiguous draw (one in
    # about 4000) tallies again, every draw exact. The words are written as they are (no exchange
    # between threads at all) and unpacked outside.
    acc, seen = tally(exact=False)
    acc = lax.cond(jnp.sum(seen) > 0, lambda a: tally(exact=True)[0], lambda a: a, acc)
    for gi in range(n_groups):
        out_ref[gi, :] = acc[gi]


def chunk_counts(pkeys, n_valid, entry, t, block_pulses: int, n_cells: int, stream_hi: int, stream_lo: int,
                 interpret: bool | None = None):
    """int32 counts (n_cells,) of the pulses of one chunk's blocks, drawn as ``pulse._cells_fast``.

    Args:
        pkeys: (B, 2) uint32 Philox keys of the chunk's blocks.
        n_valid: (B,) pulses to count in each block (the first ones; 0 to ``block_pulses``).
        entry, t: :func:`tables.alias_table` of the cells.
        block_pulses: pulses per block (a multiple of 64).
        n_cells: number of cells.
        stream_hi, stream_lo: the Philox streams of the cell word and of its rare second word.
        interpret: run the kernel in Pallas's interpreter (any backend; slow); ``None``: unless
            the default backend is a GPU.
    """
    from jax.experimental import pallas as pl

    if interpret is None:
        interpret = jax.default_backend() != "gpu"
    counters, step = counters_per_program(block_pulses)
    quarter = block_pulses // 4
    n_col = int(entry.shape[-1])
    n_groups = (n_cells + 3) // 4
    rows = 1 << (n_groups - 1).bit_length()  # the output block's rows: a power of two (Triton)
    n_blocks = pkeys.shape[0]
    programs = quarter // counters
    head = jnp.concatenate([pkeys.astype(jnp.uint32), jnp.asarray(n_valid).astype(jnp.uint32)[:, None],
                            jnp.zeros((n_blocks, 1), jnp.uint32)], axis=1)  # (B, 4): k0, k1, n_valid, 0
    kernel = functools.partial(_kernel, quarter=quarter, counters=counters, step=step,
                               n_groups=n_groups, stream_hi=stream_hi, stream_lo=stream_lo)
    params = {}
    if not interpret:
        try:  # deprecated in JAX 0.11 in favour of Mosaic GPU, to be removed in a later release
            from jax.experimental.pallas import triton as pltr
        except ImportError as e:
            raise NotImplementedError(
                f"methods=(..., 'fused') needs Pallas's Triton backend, which jax {jax.__version__} lacks; "
                "use one of the XLA histogram methods (qmc.random.histogram.HISTOGRAM_METHODS)") from e
        triton_params = getattr(pltr, "CompilerParams", None) or pltr.TritonCompilerParams  # older JAX
        params["compiler_params"] = triton_params(num_warps=_WARPS, num_stages=1)
    packed = pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((n_blocks, programs, rows, step), jnp.uint32),
        grid=(n_blocks, programs),
        in_specs=[pl.BlockSpec((None, 4), lambda b, p: (b, 0)),
                  pl.BlockSpec((n_col,), lambda b, p: (0,)),
                  pl.BlockSpec((n_col,), lambda b, p: (0,))],
        out_specs=pl.BlockSpec((None, None, rows, step), lambda b, p: (b, p, 0, 0)),
        interpret=interpret,
        **params,
    )(head, entry, t.astype(jnp.int64))[:, :, :n_groups]  # rows past n_groups are never written
    shifts = (jnp.arange(4, dtype=jnp.uint32) * np.uint32(8)).reshape(1, 1, 1, 1, 4)
    counts = (packed[..., None] >> shifts) & np.uint32(0xFF)  # (B, P, groups, lanes, outcome)
    return jnp.sum(counts.astype(jnp.int32), axis=(0, 1, 3)).ravel()[:n_cells]
