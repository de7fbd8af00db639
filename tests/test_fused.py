"""The fused fast-path kernel (qmc.engines.fused): the same counts as the XLA fast path, bit for bit.

On a CPU the kernel runs in Pallas's interpreter (slow: small blocks here); that it lowers to a
Triton kernel for a GPU is checked without one (``lowering_platforms``)."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qmc
from qmc._pytree import replace_path
from qmc.engines import exact, fused, pulse
from qmc.random import histogram, philox, tables
from qmc.engines.pulse import simulate
from qmc.presets import decoy_protocol, gys_link

PROTO = decoy_protocol()


def _tables(length_km=25.0):
    link = gys_link(length_km)
    joint = PROTO.class_probabilities()[..., None] * exact.outcome_table(link, PROTO)
    return tables.alias_table(joint.ravel())


@pytest.mark.parametrize("photon_counts", [False, pytest.param(True, marks=pytest.mark.slow)])  # True: 18 s
def test_fused_kernel_equals_the_fast_path(photon_counts):
    """Partial last block included; 0 km (many clicks) so that every outcome byte is exercised;
    with photon bins: 288 cells, 512 alias columns, 128 packed groups."""
    block = 2**12
    link, key = gys_link(0.0), jax.random.key(3)
    n = jnp.int64(3 * block + 1001)
    ref = simulate(key, link, PROTO, n, path="fast", chunk=2 * block, block_pulses=block,
                   photon_counts=photon_counts, methods=("compare", "scatter"))
    got = simulate(key, link, PROTO, n, path="fast", chunk=2 * block, block_pulses=block,
                   photon_counts=photon_counts, methods=("compare", "fused"))
    np.testing.assert_array_equal(np.asarray(got.counts), np.asarray(ref.counts))
    assert int(np.asarray(got.counts).sum()) == int(n)
    if photon_counts:
        np.testing.assert_array_equal(np.asarray(got.photon_counts), np.asarray(ref.photon_counts))


@pytest.mark.parametrize("shape", [{"_STEP": 256, "_COUNTERS": 4096},  # 2 lanes per thread, 16 steps
                                   {"_STEP": 64, "_COUNTERS": 1024, "_WARPS": 2}])  # 16 steps of 64
def test_fused_kernel_shape_changes_no_count(monkeypatch, shape):
    """The program's shape (lanes, counters per program, warps) is speed only: the counts stay the
    XLA path's (a 2**14 block: 4096 counters, so 1 and 4 programs per block)."""
    block = 2**14
    link, key, n = gys_link(0.0), jax.random.key(5), jnp.int64(2 * block - 77)
    ref = simulate(key, link, PROTO, n, path="fast", chunk=2 * block, block_pulses=block,
                   methods=("compare", "scatter"))
    for name, value in shape.items():
        monkeypatch.setattr(fused, name, value)
    assert fused.counters_per_program(block) == (shape["_COUNTERS"], shape["_STEP"])
    got = simulate(key, link, PROTO, n, path="fast", chunk=2 * block, block_pulses=block,
                   methods=("compare", "fused"))
    np.testing.assert_array_equal(np.asarray(got.counts), np.asarray(ref.counts))


def test_fused_kernel_resolves_ambiguous_draws_exactly():
    """Philox key (7, 3296) draws, at pulse 6478 of a 2**14-pulse block, a word whose bits tie with
    its alias column's cut (one pulse in 2**25): the one-word cell (16) is wrong, the exact one
    (12) is right, and the kernel must count 12, as the XLA path's fix-up does."""
    block = 2**14
    entry, cut = _tables()
    pkeys = jnp.asarray([[7, 3296]], jnp.uint32)
    provisional, ambiguous = tables.alias_draw(philox.words(pkeys[0], block, pulse._S_CELL), entry)
    cells = np.asarray(pulse._cells_fast(pkeys, block, entry, cut))
    assert np.flatnonzero(np.asarray(ambiguous)).tolist() == [6478]  # the premise of this test
    assert int(provisional[6478]) == 16 and cells[6478] == 12
    counts = jax.jit(lambda n_valid: fused.chunk_counts(pkeys, n_valid, entry, cut, block, 96, pulse._S_CELL,
                                                         pulse._S_CELL_LO))
    for n_valid in (block, 6479, 6478):  # with and without the ambiguous pulse
        got = counts(jnp.asarray([n_valid]))
        np.testing.assert_array_equal(np.asarray(got), np.bincount(cells[:n_valid], minlength=96))


@pytest.mark.parametrize("shape", [{}, {"_STEP": 512, "_COUNTERS": 8192}, {"_STEP": 256, "_WARPS": 8, "_COUNTERS": 4096}])
def test_fused_kernel_lowers_to_triton_for_a_gpu(monkeypatch, shape):
    """The kernel is written in the subset of JAX that Pallas lowers to Triton (checked here by
    lowering for CUDA without a GPU: an unsupported operation fails here, not on the GPU); so are
    the shapes that scripts/gpu_variants.py times."""
    pytest.importorskip("jax.experimental.pallas.triton")
    for name, value in shape.items():
        monkeypatch.setattr(fused, name, value)
    entry, cut = _tables()
    block = 2**20

    def counts(pkeys, n_valid):
        return fused.chunk_counts(pkeys, n_valid, entry, cut, block, 96, 0, 1, interpret=False)

    args = (jnp.zeros((16, 2), jnp.uint32), jnp.full(16, block, jnp.int64))
    # From JAX 0.11 the Triton lowering reads the target GPU's compute capability, from the local
    # device or, without one, from an abstract device (an H100 here, the card of the GPU checks).
    target = contextlib.nullcontext()  # older JAX lowers without it
    if hasattr(jax.sharding, "AbstractDevice"):
        gpu = jax.sharding.AbstractDevice(device_kind="NVIDIA H100 80GB HBM3", num_cores=None, platform="gpu")
        target = jax.sharding.use_abstract_mesh(jax.sharding.AbstractMesh((1,), ("x",), abstract_device=gpu))
    with target:
        text = jax.jit(counts).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
    assert "triton" in text
    assert f"num_warps = {shape.get('_WARPS', 4)} " in text  # the launch the variants time


def test_fused_kernel_rejects_what_it_cannot_draw(monkeypatch):
    with pytest.raises(ValueError, match="block_pulses = 1000"):
        fused.counters_per_program(1000)
    monkeypatch.setattr(fused, "_COUNTERS", 8192)  # 64 steps of 128: up to 256 pulses in a byte
    with pytest.raises(ValueError, match="could carry"):
        fused.counters_per_program(2**20)
    with pytest.raises(ValueError, match="fused"):
        simulate(jax.random.key(0), gys_link(10.0), PROTO, jnp.int64(100), path="physical", chunk=2**12,
                 block_pulses=2**12, methods=("compare", "fused"))


@pytest.mark.slow  # 20 s on 2 cores (Pallas's interpreter)
def test_fused_kernel_is_the_gpu_default_and_batches_under_vmap(monkeypatch):
    """The fast path's default on a GPU (``pulse.fast_methods``), and what a sweep does with it:
    ``vmap`` over links (Pallas's batching rule adds a grid axis), the same counts as the XLA path's."""
    assert pulse.fast_methods(2**20, backend="gpu") == ("search_top", "fused")
    assert pulse.fast_methods(2**20, backend="cpu") == histogram.kernel_methods("cpu")
    assert pulse.fast_methods(100, backend="gpu") == histogram.kernel_methods("gpu")  # not a multiple of 64
    monkeypatch.setattr(fused, "available", lambda: False)  # a JAX without Pallas's Triton backend
    assert pulse.fast_methods(2**20, backend="gpu") == histogram.kernel_methods("gpu")
    block, key = 2**12, jax.random.key(5)
    lengths = jnp.asarray([0.0, 40.0, 120.0])

    def sweep(methods):
        def one(length):
            link = replace_path(gys_link(0.0), "channel.length_km", length)
            return simulate(key, link, PROTO, jnp.int64(2 * block + 77), path="fast", chunk=2 * block,
                            block_pulses=block, methods=methods).counts
        return np.asarray(jax.vmap(one)(lengths))

    np.testing.assert_array_equal(sweep(("compare", "fused")), sweep(("compare", "scatter")))
    engine = pulse.PulseEngine(n_pulses=2 * block + 77, chunk=2 * block, block_pulses=block,
                               methods=("compare", "fused"))
    qmc.validate(engine)
    np.testing.assert_array_equal(np.asarray(engine.tally(key, gys_link(0.0), PROTO).counts),
                                  sweep(("compare", "scatter"))[0])
    with pytest.raises(qmc.ValidationError, match="methods"):
        qmc.validate(pulse.PulseEngine(path="physical", methods=("compare", "fused")))


@pytest.mark.gpu
def test_fused_default_on_gpu_in_a_sweep():
    """On the GPU the default kernels (the fused one) under ``vmap`` give the XLA path's tallies,
    point by point. (The reference is the GPU's own XLA path: the alias tables of a link with loss
    come from float64 transcendentals, which CPU and GPU may round differently.)"""
    assert pulse.fast_methods() == ("search_top", "fused")
    block = 2**16
    key, n = jax.random.key(12), jnp.int64(5 * block + 999)
    lengths = jnp.asarray([0.0, 25.0, 100.0])

    def sweep(methods):
        return np.asarray(jax.vmap(lambda length: simulate(
            key, replace_path(gys_link(0.0), "channel.length_km", length), PROTO, n, path="fast",
            chunk=4 * block, block_pulses=block, methods=methods).counts)(lengths))

    np.testing.assert_array_equal(sweep(None), sweep(("search_top", "onehot8")))


@pytest.mark.gpu
def test_fused_kernel_on_gpu_equals_cpu():
    """The Triton kernel on the GPU gives the CPU's XLA tally, bit for bit (a partial last block, a
    chunk of 16 blocks), and resolves the ambiguous draw of the test above."""
    block = 2**16
    link, key, n = gys_link(0.0), jax.random.key(11), jnp.int64(20 * block + 12345)
    with jax.default_device(jax.devices("cpu")[0]):
        cpu = np.asarray(simulate(key, link, PROTO, n, path="fast", chunk=block, block_pulses=block,
                                  methods=("compare", "scatter")).counts)
    gpu = simulate(jax.device_put(key, jax.devices("gpu")[0]), link, PROTO, n, path="fast", chunk=16 * block,
                   block_pulses=block, methods=("search_top", "fused"))
    np.testing.assert_array_equal(np.asarray(gpu.counts), cpu)
    entry, cut = _tables()
    pkeys = jnp.asarray([[7, 3296]], jnp.uint32)
    with jax.default_device(jax.devices("cpu")[0]):
        cells = np.asarray(pulse._cells_fast(pkeys, 2**14, entry, cut))
    got = fused.chunk_counts(pkeys, jnp.asarray([2**14]), entry, cut, 2**14, 96, pulse._S_CELL, pulse._S_CELL_LO,
                             interpret=False)
    np.testing.assert_array_equal(np.asarray(got), np.bincount(cells, minlength=96))
