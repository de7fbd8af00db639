"""Sweeps compile once per chunk shape, and give the same numbers as point-by-point evaluation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qmc
from qmc._pytree import get_path, replace_path
from qmc.sweep import evaluate, grid, maximize_on_grid, run

import reference as ref

EPS = ref.EPS


class TraceCounter:
    """A sweep function that counts how often JAX traces it (once per compilation)."""

    def __init__(self, analysis):
        self.analysis = analysis
        self.traces = 0

    def __call__(self, tree):
        self.traces += 1  # Python side effect: runs at trace time only
        return self.analysis.key_rate(tree["link"], tree["protocol"])


@pytest.fixture(scope="module")
def tree():
    return {"link": ref.gys_link(0.0, "threshold"), "protocol": ref.gys_protocol()}


def test_one_compilation_per_chunk_shape(tree):
    fn = TraceCounter(qmc.InfiniteDecoy(f_ec=1.22))
    lengths = np.linspace(0.0, 150.0, 11)  # 11 points in chunks of 4: 4 + 4 + 3 (padded)
    chunks = list(run(fn, tree, grid({"link.channel.length_km": lengths}), chunk_size=4))
    assert [c[0] for c in chunks] == [slice(0, 4), slice(4, 8), slice(8, 11)]
    assert fn.traces == 1
    # other values, another number of points, same chunk size: no new compilation
    out = evaluate(fn, tree, grid({"link.channel.length_km": [5.0, 25.0, 45.0, 65.0, 85.0, 300.0]}), chunk_size=4)
    assert fn.traces == 1
    assert out.rate.shape == (6,) and out.rate[0] > out.rate[4] > 0 and out.rate[5] == 0
    # other values in the link and protocol the sweep does not touch: still the same compilation
    moved = {"link": ref.gys_link(10.0, "threshold"), "protocol": ref.gys_protocol(0.3, 0.1)}
    evaluate(fn, moved, grid({"link.channel.length_km": lengths}), chunk_size=4)
    assert fn.traces == 1
    # a new chunk size is a new shape, other swept paths another function: one compilation each
    evaluate(fn, tree, grid({"link.channel.length_km": lengths}), chunk_size=5)
    assert fn.traces == 2
    two_axes = grid({"link.channel.length_km": [5.0, 25.0], "protocol.intensities.0": [0.3, 0.5]})
    evaluate(fn, tree, two_axes, chunk_size=4)
    assert fn.traces == 3


def test_the_whole_grid_in_one_call_compiles_once(tree):
    fn = TraceCounter(qmc.VacuumWeak(f_ec=1.22))
    evaluate(fn, tree, grid({"link.channel.length_km": np.arange(7.0)}))
    evaluate(fn, tree, grid({"link.channel.length_km": np.arange(7.0) + 100.0}))
    assert fn.traces == 1


def test_sweep_matches_point_by_point_evaluation(tree):
    analysis = qmc.VacuumWeak(f_ec=1.22)
    fn = TraceCounter(analysis)
    lengths, mus = np.array([0.0, 33.0, 97.5, 141.0, 160.0]), np.array([0.2, 0.48, 0.9])
    out = evaluate(fn, tree, grid({"link.channel.length_km": lengths, "protocol.intensities.0": mus}), chunk_size=4)
    assert out.rate.shape == (5, 3)
    single = jax.jit(lambda t: analysis.key_rate(t["link"], t["protocol"]))
    for i, length in enumerate(lengths):
        for j, mu in enumerate(mus):
            point = replace_path(replace_path(tree, "link.channel.length_km", length), "protocol.intensities.0", mu)
            expected = single(point)
            # the same float64 operations, batched: equal up to a few ulps of the terms
            scale = float(expected.gain) + float(expected.rate)
            assert abs(out.rate[i, j] - float(expected.rate)) <= 16 * EPS * scale
            assert out.reason[i, j] == int(expected.reason)
    assert np.all(out.rate[-1] == 0.0)  # beyond 141 km


def test_bad_path_fails_before_compiling(tree):
    fn = TraceCounter(qmc.InfiniteDecoy())
    with pytest.raises(KeyError, match="lenght_km"):
        list(run(fn, tree, grid({"link.channel.lenght_km": [1.0, 2.0]})))
    assert fn.traces == 0


def test_grid_points_and_keyword_paths():
    g = grid(link__channel__length_km=[0.0, 10.0], protocol__p_z=[0.5, 0.6, 0.7])
    assert g.paths == ("link.channel.length_km", "protocol.p_z")
    assert g.shape == (2, 3) and g.size == 6
    np.testing.assert_array_equal(g.points()[:4], [[0.0, 0.5], [0.0, 0.6], [0.0, 0.7], [10.0, 0.5]])


def test_paths_read_and_replace_leaves(tree):
    assert float(get_path(tree, "link.channel.loss_db_per_km")) == ref.GYS_LOSS_DB_PER_KM
    assert float(get_path(tree, "protocol.intensities.1")) == ref.GYS_NU
    new = replace_path(tree, "protocol.intensities.0", 0.3)
    np.testing.assert_array_equal(new["protocol"].intensities, [0.3, 0.05, 0.0])
    np.testing.assert_array_equal(tree["protocol"].intensities, [0.48, 0.05, 0.0])  # a copy
    with pytest.raises(KeyError):
        replace_path(tree, "link.detector.eficiency", 0.5)


def test_maximize_on_grid_finds_the_grid_maximum(tree):
    """A known maximum: -(mu - 0.3)^2 on a grid that contains 0.3; ties go to the first value."""

    def parabola(t):
        mu = jnp.asarray(t["protocol"].intensities)[0]
        return qmc.KeyRate(rate=-((mu - 0.3) ** 2), reason=jnp.int32(0))

    values = jnp.linspace(0.0, 0.6, 7)
    rate = lambda out: out.rate  # noqa: E731 (the parabola is the score itself)
    best, arg = jax.jit(lambda t: maximize_on_grid(parabola, t, "protocol.intensities.0", values, score=rate))(tree)
    assert float(arg) == pytest.approx(0.3, abs=EPS)
    assert float(best.rate) == pytest.approx(0.0, abs=4 * EPS)
    flat = lambda t: qmc.KeyRate(rate=jnp.asarray(0.0), reason=jnp.int32(0))  # noqa: E731
    _, first = maximize_on_grid(flat, tree, "protocol.intensities.0", values, score=rate)
    assert float(first) == 0.0
    # coarse to fine on a longer grid: the same maximum as every value, evaluated
    fine = jnp.linspace(0.0, 0.6, 601)
    for exhaustive in (False, True):
        _, arg = maximize_on_grid(parabola, tree, "protocol.intensities.0", fine, score=rate, exhaustive=exhaustive)
        assert float(arg) == pytest.approx(0.3, abs=1e-12)


def test_classes_with_the_same_fields_never_share_a_compiled_program():
    """Different classes with identical fields have different tree structures, so ``jit`` never
    runs one's program for the other (with ``jax.tree_util.register_dataclass``, jaxlib 0.10
    compared such structures equal: SinglePhoton got InfiniteDecoy's rate when their hashes met).
    Many classes make a hash collision likely if the structures compared equal."""
    import dataclasses

    from qmc._pytree import pytree_dataclass

    classes = []
    for i in range(64):
        cls = pytree_dataclass(type(f"Same{i}", (), {"__annotations__": {"f": "float"}, "f": 1.0,
                                                      "value": (lambda i: lambda self: self.f * 0 + i)(i)}))
        classes.append(cls)
    assert dataclasses.is_dataclass(classes[0])
    structures = [jax.tree_util.tree_structure(c()) for c in classes]
    assert not any(structures[i] == structures[j] for i in range(64) for j in range(i))
    call = jax.jit(lambda obj: obj.value())
    assert [int(call(c())) for c in classes] == list(range(64))
    a, b = qmc.ANALYSES["infinite_decoy"](), qmc.ANALYSES["single_photon"]()
    assert jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(b)
