"""Pulse engine: Philox, exact 64-bit categorical draws and alias tables, agreement with the exact engine, rare-event
resolution, hidden photon counts, memory and reproducibility."""

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

import qmc
import reference as ref
from qmc.engines import exact
from qmc.random import binomial, compact, histogram, philox, tables
from qmc.engines.physical import physical_tables as _physical_tables
from qmc.engines.pulse import PulseEngine, simulate

Z = 5.0
BLOCK = 2**18  # small blocks keep the tests quick; the engine default is 2**20
PROTO = qmc.DecoyBB84(intensities=(0.48, 0.1, 0.0), probabilities=(0.8, 0.1, 0.1))


_link = ref.gys_threshold_link


def _run(link, proto, n, path, key=0, chunk=BLOCK, photon_counts=False):
    return simulate(jax.random.key(key), link, proto, n, path=path, chunk=chunk, block_pulses=BLOCK, photon_counts=photon_counts)


def _joint(link, proto):
    return np.asarray(proto.class_probabilities()[..., None] * exact.outcome_table(link, proto))


def _assert_cells_agree(counts, p, n, label=""):
    counts = np.asarray(counts).ravel()
    p = np.asarray(p).ravel()
    sd = np.sqrt(n * p * (1 - p))
    bad = np.abs(counts - n * p) > Z * sd
    # A cell with (almost) no expected count may hold a single event: 5 sd of 1e-3 expected is < 1.
    bad &= ~((n * p < 0.05) & (counts <= 1))
    assert not bad.any(), (label, np.argwhere(bad), counts[bad], (n * p)[bad])


# --- Philox and the exact categorical sampler ---------------------------------------------------


def test_philox_known_answers():
    """Known-answer tests of Random123's philox4x32-10."""
    cases = [
        ((0, 0), (0, 0, 0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 2, (0xFFFFFFFF,) * 4, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        ((0xA4093822, 0x299F31D0), (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
         (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    ]
    for key, ctr, expected in cases:
        out = philox.philox4x32(*key, *ctr)
        assert tuple(int(v) for v in out) == expected


def _effective(t_hi, t_lo):
    """Exact cell probabilities implied by 64-bit thresholds, as Fractions."""
    t = [0] + [int(h) * 2**32 + int(l) for h, l in zip(np.asarray(t_hi), np.asarray(t_lo))] + [2**64]
    return [Fraction(b - a, 2**64) for a, b in zip(t[:-1], t[1:])]


def test_thresholds_resolve_rare_cells():
    """Cell weights are exact to 2**-64 (absolute), wherever the cell sits: SNSPD dark counts
    (1e-9), a 1e-13 cell between large ones, empty cells and a certain cell."""
    p = np.array([0.3, 1e-13, 0.2, 1e-9, 0.0, 0.5 - 1e-13 - 1e-9, 0.0])
    eff = _effective(*tables.thresholds64(p))
    for pi, e in zip(p, eff):
        if pi == 0:
            assert e == 0
        else:
            assert abs(float(e) - pi) <= 2.0**-64 + 1e-16 * pi
    eff = _effective(*tables.thresholds64(np.array([0.0, 1.0, 0.0])))
    assert eff == [0, 1, 0]


def _alias_effective(probs):
    """Exact cell probabilities that an alias table realizes (Fractions), and the 63-bit weights
    it was built from."""
    entry, cut = (np.asarray(x) for x in tables.alias_table(jnp.asarray(probs)))
    n_col = entry.size
    k = n_col.bit_length() - 1
    cap = 2 ** (63 - k)
    mass = [0] * n_col
    for c in range(n_col):
        mass[c] += int(cut[c])
        mass[int(entry[c]) & (n_col - 1)] += cap - int(cut[c])
        assert int(entry[c]) >> k == min(int(cut[c]) >> 31, 2 ** (32 - k) - 1)
    assert sum(mass) == 2**63 and not any(mass[len(probs):])
    return [Fraction(m, 2**63) for m in mass[: len(probs)]]


@pytest.mark.parametrize("m", [1, 2, 3, 96, 128, 129, 288])
def test_alias_table_is_exact(m):
    """Walker/Vose pairing in integers: every cell gets exactly floor(p 2**63) (the largest cell
    the rounding), with empty, tiny (1e-13) and certain cells."""
    rng = np.random.default_rng(m)
    cases = [rng.random(m) ** 8 * (rng.random(m) > 0.2) + np.eye(m)[0] * 1e-3, np.eye(m)[-1]]
    if m >= 7:
        cases.append(np.r_[[0.3, 1e-13, 0.2, 1e-9, 0.0, 0.5 - 1e-13 - 1e-9, 0.0], np.zeros(m - 7)])
    for p in cases:
        p = p / p.sum()
        weights = [int(np.floor(x * 2.0**63)) for x in np.minimum(p, 1 - 2**-53)]
        weights[int(np.argmax(p))] += 2**63 - sum(weights)
        assert _alias_effective(p) == [Fraction(w, 2**63) for w in weights]


def test_alias_draws_and_fixup_match_integer_arithmetic():
    """Cells from one word, and from two words where the first is ambiguous, against Python
    integers (the 63 - k bit uniform against the column's cut)."""
    p = np.array([0.3, 1e-13, 0.2, 1e-9, 0.0, 0.5 - 1e-13 - 1e-9, 0.0])
    entry, cut = tables.alias_table(jnp.asarray(p))
    e, t = np.asarray(entry).astype(int), np.asarray(cut).astype(object)
    n_col = e.size
    k = n_col.bit_length() - 1
    rng = np.random.default_rng(1)
    hi = rng.integers(0, 2**32, 4000, dtype=np.uint64)
    cols = np.arange(400) % n_col  # every column's ambiguous word
    hi[:400] = (cols.astype(np.uint64) << np.uint64(32 - k)) | (e[cols] >> k).astype(np.uint64)
    hi = hi.astype(np.uint32)
    lo = rng.integers(0, 2**32, hi.size, dtype=np.uint64).astype(np.uint32)
    lo[:200] = 0
    lo[200:400] = 0xFFFFFFFF
    cell, amb = tables.alias_draw(jnp.asarray(hi), entry)
    exact_cell = tables.alias_exact(jnp.asarray(hi), jnp.asarray(lo), entry, cut)
    brute = []
    for a, b in zip(hi.tolist(), lo.tolist()):
        col, u = a >> (32 - k), (a & (2 ** (32 - k) - 1)) * 2**31 + (b >> 1)
        brute.append(col if u < t[col] else e[col] & (n_col - 1))
    np.testing.assert_array_equal(np.asarray(exact_cell), brute)
    amb = np.asarray(amb)
    assert amb[:400].all() and amb[400:].mean() < 1e-2
    np.testing.assert_array_equal(np.asarray(cell)[~amb], np.asarray(brute)[~amb])
    assert set(np.asarray(brute)) <= {0, 1, 2, 3, 5}  # the empty cells 4 and 6 never come out


def test_rare_event_bias_below_1e_3():
    """The probability a sampler actually realizes, computed exactly from its integer thresholds,
    against the target: 32-bit quantization (and a float32 uniform, steps of 2**-23 / 2**-24) turn
    GYS's p_dark = 8.5e-7 into 9.5e-7 (a 12 % bias) and SNSPD's 1e-9 into 0 or 1.2e-9; the engines'
    64-bit thresholds are exact to 2**-64 absolute and the geometric gaps to 2**-53."""
    for p_dark in (8.5e-7, 1e-9):
        # float32 uniform u < p: p is realized as ceil(p / 2**-24) * 2**-24 at best.
        f32 = math.ceil(p_dark / 2**-24) * 2**-24
        assert abs(f32 / p_dark - 1) > 1e-3
        # The joint table as the fast path and the stream engine draw it (alias table, 2**-63)
        # and as cumulative thresholds (2**-64, the physical path's sampler): the dark-count-only
        # cell of a vacuum pulse (no photon) is among its cells.
        link = _link(100.0, p_dark=p_dark)
        joint = _joint(link, PROTO).ravel()
        for table, step in ((_alias_effective(joint), 2.0**-63), (_effective(*tables.thresholds64(joint)), 2.0**-64)):
            eff = np.array([float(e) for e in table])
            # Relative error below 1e-3 for every cell above 2**-53 (a rarer cell, e.g. a double
            # dark count 1e-20, is expected < 6e-4 times in the engine's largest run of 2**52).
            ok = joint > 2.0**-53
            assert joint[ok].min() < 1e-9
            assert np.max(np.abs(eff[ok] / joint[ok] - 1.0)) < 1e-3
            assert np.all(np.abs(eff - joint) <= step + 1e-15 * joint)  # the largest cell absorbs ~1e-16
        # Physical path: photon fates (eta e_d ~ 1e-5) and the photon-number tail thresholds.
        (c_hi, c_lo), (s_hi, s_lo), (f_hi, f_lo) = _physical_tables(link, PROTO, 32)
        eta = float(link.transmittance())
        for row, f0 in enumerate((1 - 0.033, 0.033, 0.5)):
            eff = _effective(f_hi[row], f_lo[row])
            assert abs(float(eff[0]) / (eta * f0) - 1) < 1e-9
        # Dark counts on the physical path: a gap g = floor(log u / log(1 - p)) is 0 iff u > 1 - p;
        # with 53-bit uniforms u = (i + 1/2) 2**-53 that is exactly this many grid points:
        q = 1.0 - p_dark
        realized = (2**53 - math.ceil(q * 2**53 - 0.5)) / 2**53
        assert abs(realized / p_dark - 1.0) < 1e-3


def test_categorical_fixup_resolves_ambiguous_words():
    """Words equal to a threshold's upper word are resolved with the lower word exactly as a 64-bit
    comparison (brute force against Python integers)."""
    p = np.array([0.25, 3e-10, 0.25, 1e-12, 0.5 - 3e-10 - 1e-12])
    t_hi, t_lo = tables.thresholds64(p)
    thr = [int(h) * 2**32 + int(l) for h, l in zip(np.asarray(t_hi), np.asarray(t_lo))]
    rng = np.random.default_rng(0)
    hi = np.concatenate([np.asarray(t_hi, np.uint64), rng.integers(0, 2**32, 64, dtype=np.uint64)]).astype(np.uint32)
    hi = np.repeat(hi, 3)
    lo = rng.integers(0, 2**32, hi.size, dtype=np.uint64).astype(np.uint32)
    lo[::3] = 0
    lo[1::3] = 0xFFFFFFFF
    cell, amb = tables.categorical(jnp.asarray(hi), t_hi)
    w_lo = jnp.asarray(lo)
    fixed = compact.fix_ambiguous(
        cell, amb, lambda i: tables.categorical_exact(jnp.asarray(hi)[i], w_lo[i], t_hi, t_lo)
    )
    brute = [sum(int(h) * 2**32 + int(l) >= t for t in thr) for h, l in zip(hi, lo)]
    np.testing.assert_array_equal(np.asarray(fixed), brute)
    assert int(amb.sum()) > 0


def test_geometric_positions_are_bernoulli():
    """Dark counts placed by geometric gaps: the count per block is Binomial(length, p)."""
    p, length, blocks = 3e-4, 2**14, 2000
    f = jax.jit(jax.vmap(lambda b: binomial.geometric_positions(philox.philox_key(jax.random.key(2), b), 0, p, length).sum()))
    counts = np.asarray(f(jnp.arange(blocks)))
    mean = length * p
    assert abs(counts.mean() - mean) <= Z * math.sqrt(mean * (1 - p) / blocks)
    ks = np.arange(0, 16)
    obs = np.array([(counts == k).sum() for k in ks[:-1]] + [(counts >= 15).sum()])
    exp = np.append(st.binom.pmf(ks[:-1], length, p), st.binom.sf(14, length, p)) * blocks
    keep = exp >= 5
    chi = ((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum()
    assert st.chi2.sf(chi, keep.sum() - 1) > 1e-6


# --- agreement with the exact engine -------------------------------------------------------------


def _random_points(seed, count):
    return ref.random_points(seed, count, max_length_km=60, log10_p_dark=(-7, -3))


@pytest.mark.parametrize("path", ["fast", "physical"])
def test_pulse_agrees_with_exact_at_random_points(path):
    """Every cell of the outcome table within 5 binomial standard errors, fixed keys."""
    n = 2**21
    for i, (link, proto) in enumerate(_random_points(3, 3)):
        t = _run(link, proto, n, path, key=i)
        assert int(t.n_pulses) == n
        _assert_cells_agree(t.counts, _joint(link, proto), n, f"{path} point {i}")


def test_pulse_agrees_with_exact_ma2005_fast():
    link = _link(10.0, click_model="ma2005")
    n = 2**20
    t = _run(link, PROTO, n, "fast", key=4)
    _assert_cells_agree(t.counts, _joint(link, PROTO), n, "ma2005")
    with pytest.raises(ValueError, match="threshold"):
        _run(link, PROTO, n, "physical")


@pytest.mark.parametrize("path", ["fast", "physical"])
def test_hidden_photon_counts_follow_poisson(path):
    """Pulses sent with 0, 1, 2+ photons per intensity follow the Poisson law (chi-square), and
    the single-photon yield matches the exact engine's Fock-state yield."""
    link, n = _link(0.0, efficiency=0.5), 2**21
    t = _run(link, PROTO, n, path, key=5, photon_counts=True)
    pc = np.asarray(t.photon_counts)  # (k, 2, 2, 2, 3, 4)
    np.testing.assert_array_equal(pc.sum(-2), np.asarray(t.counts))
    per_k = pc.sum(-1).sum((1, 2, 3))  # (k, 3)
    mu = np.asarray(PROTO.intensities)
    pois = np.stack([np.exp(-mu), mu * np.exp(-mu), 1 - np.exp(-mu) * (1 + mu)], -1)
    for k in range(2):
        tot = per_k[k].sum()
        chi = ((per_k[k] - tot * pois[k]) ** 2 / (tot * pois[k])).sum()
        assert st.chi2.sf(chi, 2) > 1e-6
    assert per_k[2, 1:].sum() == 0
    y1 = exact.photon_number_observations(link, PROTO, 1).gain[0, 0]
    y, y_se, _, _ = t.photon_yields()
    assert abs(float(y[0, 0, 1]) - float(y1)) <= Z * float(y_se[0, 0, 1])


# --- randomness: reproducible, chunk-independent; memory flat in n_pulses -----------------------


@pytest.mark.parametrize("path", ["fast", "physical"])
def test_chunk_size_does_not_change_numbers(path):
    link, n = _link(), 3 * BLOCK + 12345  # a partial last block
    a = _run(link, PROTO, n, path, key=6, chunk=BLOCK)
    b = _run(link, PROTO, n, path, key=6, chunk=2 * BLOCK)
    np.testing.assert_array_equal(a.counts, b.counts)
    c = _run(link, PROTO, n, path, key=6, chunk=BLOCK)
    np.testing.assert_array_equal(a.counts, c.counts)
    d = _run(link, PROTO, n, path, key=7, chunk=BLOCK)
    assert not np.array_equal(a.counts, d.counts)
    assert int(a.n_pulses) == n
    # A shorter run tallies exactly the first pulses of a longer one.
    e = _run(link, PROTO, 2 * BLOCK, path, key=6, chunk=BLOCK)
    f = _run(link, PROTO, BLOCK, path, key=6, chunk=BLOCK)
    g = _run(link, PROTO, 3 * BLOCK, path, key=6, chunk=BLOCK)
    assert np.all(np.asarray(e.counts) >= np.asarray(f.counts))
    assert np.all(np.asarray(g.counts) >= np.asarray(e.counts))


def test_memory_flat_in_n_pulses():
    """n_pulses is a traced loop bound: the program (and its memory) is the same for 1e6 and 1e11
    pulses, and its temporary memory is set by the chunk."""
    link = _link()
    kwargs = dict(path="fast", chunk=BLOCK, block_pulses=BLOCK, photon_counts=False, max_photons=32)
    key = jax.random.key(0)
    small = simulate.lower(key, link, PROTO, jnp.int64(10**6), **kwargs)
    huge = simulate.lower(key, link, PROTO, jnp.int64(10**11), **kwargs)
    assert small.as_text() == huge.as_text()
    compiled = small.compile()
    mem = compiled.memory_analysis()
    if mem is not None:
        assert mem.temp_size_in_bytes < 64 * BLOCK * 4  # a few dozen words per pulse of one chunk
    # Same compiled program runs any n (the trip count is data).
    t = compiled(key, link, PROTO, jnp.int64(5))
    assert int(t.n_pulses) == 5


def test_engine_object():
    e = PulseEngine(n_pulses=BLOCK, chunk=BLOCK, block_pulses=BLOCK)
    qmc.validate(e)
    t = e.tally(jax.random.key(1), _link(), PROTO)
    assert int(t.n_pulses) == BLOCK and t.counts.dtype == jnp.int64
    obs = e.observations(jax.random.key(1), _link(), PROTO)
    assert obs.gain.shape == (3, 2)
    with pytest.raises(qmc.ValidationError):
        qmc.validate(PulseEngine(chunk=3 * 2**19))
    # vmap over sweep points (fiber lengths) works and compiles once.
    lengths = jnp.asarray([0.0, 50.0])
    tallies = jax.vmap(lambda L: e.tally(jax.random.key(1), qmc._pytree.replace_path(_link(), "channel.length_km", L), PROTO))(lengths)
    assert tallies.counts.shape == (2, 3, 2, 2, 2, 4)


# --- kernel methods (per backend) never change the numbers -----------------------------------------


@pytest.mark.parametrize("path", ["fast", "physical"])
def test_kernel_methods_give_identical_tallies(path):
    link, n = _link(), 2 * BLOCK + 999
    # The CPU's and the accelerator's choices (every method alone: the test below, against numpy).
    combos = [("compare", "scatter"), histogram.kernel_methods("gpu")]
    runs = {
        methods: simulate(jax.random.key(3), link, PROTO, n, path=path, chunk=2 * BLOCK, block_pulses=BLOCK,
                          methods=methods).counts
        for methods in combos
    }
    reference = np.asarray(runs[("compare", "scatter")])
    assert reference.sum() == n
    for methods, counts in runs.items():
        np.testing.assert_array_equal(np.asarray(counts), reference, err_msg=str(methods))


@pytest.mark.slow  # about 20 s on 2 cores: every search and histogram kernel compiled once more
def test_search_and_histogram_methods_agree_with_numpy():
    rng = np.random.default_rng(5)
    for m in (1, 8, 95, 128):  # 8 and 128: a power of two pads to twice its size
        h = np.sort(rng.integers(0, 2**32, m)).astype(np.int64)
        if m > 3:
            h[1], h[0], h[-1] = h[2], 0, 2**32  # repeated, zero and unreachable thresholds
        w = rng.integers(0, 2**32, 20000).astype(np.uint32)
        w[:m] = np.minimum(h, 2**32 - 1)  # words equal to thresholds (ambiguous draws)
        h32 = np.minimum(h, 2**32 - 1)  # upper words (a 2**32 threshold is resolved by the fix-up)
        expect = np.searchsorted(h32, w.astype(np.int64), side="right")
        for method in tables.CATEGORICAL_METHODS:
            cell, amb = tables.categorical(jnp.asarray(w), jnp.asarray(h), method)
            np.testing.assert_array_equal(np.asarray(cell), expect, err_msg=method)
            below = h32[np.maximum(expect - 1, 0)]
            np.testing.assert_array_equal(np.asarray(amb), (expect > 0) & (w.astype(np.int64) == below))
    for n_bins in (5, 96, 97, 300):  # 96: no-click cells (multiples of 4) dominate, as in a tally
        v = rng.integers(-3, n_bins + 3, 10007)
        if n_bins == 96:
            v[:5000] = 4 * rng.integers(0, 24, 5000)
        expect = np.bincount(v[(v >= 0) & (v < n_bins)], minlength=n_bins)
        for method in histogram.HISTOGRAM_METHODS:
            counts = histogram.histogram(jnp.asarray(v), n_bins, method)
            assert counts.dtype == jnp.int32, method
            np.testing.assert_array_equal(np.asarray(counts), expect, err_msg=method)
    v = rng.integers(-2, 99, 3 * 2**14 + 17)  # matmul: several products of 2**14 values, summed
    expect = np.bincount(v[(v >= 0) & (v < 97)], minlength=97)
    np.testing.assert_array_equal(np.asarray(histogram.histogram(jnp.asarray(v), 97, "matmul")), expect)
    v = np.full(1000, 7)  # 1000 counts in one bin: packed bytes never carry (groups of 128 < 256)
    assert int(histogram.histogram(jnp.asarray(v), 9, "packed")[7]) == 1000


@pytest.mark.gpu
def test_fast_path_on_gpu_equals_cpu():
    """Integer Philox and 64-bit thresholds: the GPU's tally is the CPU's, bit for bit, whatever the
    device's chunk and kernel methods."""
    link, n = _link(), 4 * BLOCK + 17
    key = jax.random.key(11)
    with jax.default_device(jax.devices("cpu")[0]):
        cpu = simulate(key, link, PROTO, n, path="fast", chunk=BLOCK, block_pulses=BLOCK, methods=("compare", "scatter"))
        cpu = np.asarray(cpu.counts)
    gpu = simulate(jax.device_put(key, jax.devices("gpu")[0]), link, PROTO, n, path="fast", chunk=4 * BLOCK,
                   block_pulses=BLOCK)
    np.testing.assert_array_equal(np.asarray(gpu.counts), cpu)
