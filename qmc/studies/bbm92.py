"""Study ``bbm92_distance``: the BBM92 key rate of a pair source versus the total distance between
Alice and Bob, with the source in the middle and at Alice, beside the PLOB bound of the whole
distance.

Model: :mod:`qmc.entanglement` (docs/entanglement.md). The link is a :class:`TwoArmLink` built from
the config's groups: ``source`` (a :class:`qmc.entanglement.PairSource`: statistics, visibility),
``channel`` (the fiber's ``loss_db_per_km`` on both arms; its ``insertion_loss_db`` in front of each
receiver), ``detector`` (both receivers: ``efficiency``, ``p_dark`` per detector, and
``misalignment`` as Ma, Fung, Lo's e_d, the pair's error, one number for the link) and the
``bbm92`` group (:class:`EntanglementOptions`: the positions drawn, the dark-count click model).
The key rate is Ma, Fung, Lo's (PRA 76, 012307 (2007)): R = q Q [1 - f H2(E) - H2(E)] per pulse
pair, q = 1/2 (symmetric bases), f = ``analysis.f_ec``, with only the mean pair number optimized
at every length (:func:`qmc.entanglement.optimal_key_rate`). PLOB: -log2(1 - eta) of the fiber of
the whole distance (:func:`qmc.analysis.bounds.plob_bound`, detectors excluded).

Finite key: every :class:`qmc.analysis.BBM92Finite` in ``analysis.variants`` (e.g.
``analysis=bbm92_finite``, or ``experiment=bbm92_finite``) adds its rows, labelled by its variant
key: Tomamichel, Lim, Gisin, Renner's key length (Nat. Commun. 3, 634 (2012), Eq. (2)) per pulse
pair, key from Z and X the test basis, with the mean pair number and the basis bias p_z both
optimized at every length (:func:`optimal_finite_rate`, a coarse-to-fine grid). Without such a
variant (the default) the table is the asymptotic one alone.

Rows (:data:`BBM92_COLUMNS`): per position and length ``analysis = bbm92`` with the optimal
``mean_pair_number``, its ``gain`` and ``qber`` (Z basis; both bases are equal), and
``max_distance_km`` (bisection on the optimal rate, :func:`maximum_distance`, to 0.05 km) and
``p_z`` (both parties' probability of the key basis: 1/2, Ma-Fung-Lo's symmetric bases); the same
per finite-key variant (its label in ``analysis``; ``p_z`` its optimum); per length one ``analysis
= plob`` row (``source_position`` empty). Figure: :func:`qmc.plots.bbm92.bbm92_distance`. The CHSH
study is :mod:`qmc.studies.chsh`.
"""

from __future__ import annotations

import dataclasses
import logging
from types import SimpleNamespace
from typing import Any, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qmc._compile import jit
from qmc.analysis.bbm92_finite import BBM92Finite
from qmc.analysis.bounds import plob_bound
from qmc.analysis.keyrate import score
from qmc.channels.base import db_to_transmittance
from qmc.entanglement import (
    CLICK_MODELS, POSITIONS, PairSource, TwoArmLink, gain_and_qber, optimal_key_rate,
)
from qmc.protocols.bbm92 import BBM92
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import Sweep
from qmc.studies.spec import require_exact_engine, setting
from qmc.validation import Check, Range, Rule, ValidationError, validate

__all__ = ["bbm92_distance", "BBM92_COLUMNS", "EntanglementOptions", "two_arm_link", "maximum_distance",
           "maximum_finite_distance", "optimal_finite_rate", "finite_variants"]

BBM92_COLUMNS = ("length_km", "analysis", "source_position", "key_rate", "mean_pair_number", "gain", "qber",
                 "max_distance_km", "p_z")
SIFTING = 0.5  # q of Ma, Fung, Lo: symmetric bases, half the coincidences sifted
MAX_DISTANCE_SEARCH_KM = 2000.0  # upper end of the maximum-distance bisection

log = logging.getLogger("qmc")


def _options_from(cls, value: Any, name: str):
    """A frozen options dataclass from the config's plain mapping ``name`` (None: the defaults)."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError(f"{name}: expected a mapping of {', '.join(f.name for f in dataclasses.fields(cls))}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise ValidationError(f"{name}.{unknown[0]}: unknown key; the keys are {', '.join(sorted(names))}")
    return cls(**value)


@dataclasses.dataclass(frozen=True)
class EntanglementOptions:
    """The ``bbm92`` group of ``bbm92_distance`` (a plain mapping in the config).

    Attributes:
        positions: the source positions drawn, each ``middle`` or ``alice``.
        click_model: the receivers' dark counts: ``threshold`` (a detector clicks on a photon or a
            dark count) or ``ma2007`` (Ma, Fung, Lo's: a side's dark counts only where no photon
            reaches it); docs/entanglement.md.
    """

    positions: Any = POSITIONS
    click_model: str = "threshold"

    def __post_init__(self) -> None:
        if isinstance(self.positions, str):
            object.__setattr__(self, "positions", (self.positions,))
        elif isinstance(self.positions, list):
            object.__setattr__(self, "positions", tuple(self.positions))

    def checks(self):
        def positions_ok(o, prefix):
            bad = [p for p in o.positions if p not in POSITIONS]
            if o.positions and not bad:
                return None
            shown = bad[0] if bad else "[]"
            return f"{prefix}positions = {shown}: unknown position; must be a non-empty list of {', '.join(POSITIONS)}"

        return [Check(positions_ok), Rule("click_model", lambda s, xp: xp.asarray(s.click_model in CLICK_MODELS),
                                          f"must be one of {', '.join(CLICK_MODELS)}")]


def two_arm_link(source: PairSource, channel, detector, click_model: str = "threshold") -> TwoArmLink:
    """The :class:`TwoArmLink` of the config's groups: both arms the ``channel``'s fiber (loss per
    km; its insertion loss in front of each receiver) and the ``detector``'s receiver (efficiency,
    dark counts per detector); the detector's misalignment is the pair's e_d. Length 0 (swept)."""
    if not isinstance(source, PairSource):
        raise ValidationError(f"source: the entanglement studies need a pair source (source=spdc, _target_: "
                              f"qmc.entanglement.PairSource), got {type(source).__name__}")
    insertion = float(getattr(channel, "insertion_loss_db", 0.0) or 0.0)
    efficiency = float(detector.efficiency) * float(db_to_transmittance(insertion))
    return TwoArmLink(source=source, length_km=0.0, loss_db_per_km=float(channel.loss_db_per_km),
                      efficiency_a=efficiency, efficiency_b=efficiency, p_dark_a=float(detector.p_dark),
                      p_dark_b=float(detector.p_dark), misalignment=float(detector.misalignment),
                      click_model=click_model)


# The source's distance from Alice as a fraction of the total length: one compiled program serves
# every position (``PairSource.position`` is static, ``position_km`` a leaf; clip(f L) is exactly
# split_length's L / 2 and 0).
_FRACTION = {"middle": 0.5, "alice": 0.0}


def _placed(link: TwoArmLink, length, fraction) -> TwoArmLink:
    source = dataclasses.replace(link.source, position="middle", position_km=fraction * length)
    return dataclasses.replace(link, length_km=length, source=source)


@jax.jit
def _curve(link: TwoArmLink, lengths, f_ec, fraction):
    """(R*, mu*, Q, E) at every length: the rate maximized over the mean pair number."""
    def one(length):
        at = _placed(link, length, fraction)
        rate, mu = optimal_key_rate(at, f_ec, SIFTING)
        best = dataclasses.replace(at, source=dataclasses.replace(at.source, mean_pair_number=mu))
        gain, qber = gain_and_qber(best.table())
        return rate, mu, gain[0], qber[0]
    return jax.vmap(one)(lengths)


@jax.jit
def _optimal_rate(link: TwoArmLink, length, f_ec, fraction):
    return optimal_key_rate(_placed(link, length, fraction), f_ec, SIFTING)[0]


def maximum_distance(link: TwoArmLink, f_ec: float, position: str = "middle",
                     hi_km: float = MAX_DISTANCE_SEARCH_KM, tol_km: float = 0.05) -> float:
    """The longest total length with a positive optimal key rate, the source at ``position``: the
    bisection of :func:`qmc.entanglement.maximum_distance_km` on one compiled program for every
    link and position (arguments, not constants), so a run compiles it once."""
    fraction = jnp.float64(_FRACTION[position])

    def positive(length):
        return float(_optimal_rate(link, jnp.float64(length), jnp.float64(f_ec), fraction)) > 0.0
    return _reach(positive, hi_km, tol_km)


def maximum_finite_distance(link: TwoArmLink, analysis: BBM92Finite, position: str = "middle",
                            hi_km: float = MAX_DISTANCE_SEARCH_KM, tol_km: float = 0.05) -> float:
    """:func:`maximum_distance` for the finite-key rate of ``analysis`` (:func:`optimal_finite_rate`):
    each round evaluates :data:`_CHUNK` lengths evenly inside the bracket (one call of the curve's
    program) and keeps the cell where the rate stops being positive, until it is below ``tol_km``."""
    fraction = _FRACTION[position]

    def positive(lengths):
        return _finite_curve(link, analysis, lengths, fraction)[0] > 0.0

    lo, hi = 0.0, float(hi_km)
    ends = positive([lo, hi])
    if not ends[0]:
        return 0.0
    if ends[1]:
        return hi
    while hi - lo > tol_km:
        inside = lo + (hi - lo) * np.arange(1, _CHUNK + 1) / (_CHUNK + 1)
        keys = positive(inside)
        last = int(np.flatnonzero(keys)[-1]) if keys.any() else -1  # the rate falls with the length
        lo, hi = (float(inside[last]) if last >= 0 else lo), (float(inside[last + 1]) if last + 1 < _CHUNK else hi)
    return 0.5 * (lo + hi)


# The finite-key optimum: log10 mu on [-5, 0.5] (spacing 0.25) times logit(p_z) on [0, 6] (p_z from
# 1/2 to 0.9975: key from Z, so p_z < 1/2 is never better), then refinements of 9 x 9 points over
# +-1 spacing (a fourfold finer spacing each): 0.25 / 4^4 ~ 1e-3 in log10 mu, 0.375 / 4^4 ~ 1.5e-3
# in logit(p_z) after four, where the rate is within ~1e-6 (relative) of its maximum (2e-7 from the
# gradient optimizer's at 50 and 100 km, N = 1e12: experiments/bbm92_finite/README.md).
_LOG10_MU_GRID = (-5.0, 0.5, 23)
_LOGIT_P_Z_GRID = (0.0, 6.0, 17)
_REFINEMENTS = 4


def _finite_out(link: TwoArmLink, analysis: BBM92Finite, log10_mu, logit_p_z):
    protocol = BBM92(p_z=jax.nn.sigmoid(logit_p_z), mean_pair_number=10.0 ** log10_mu, key_basis="Z")
    return analysis.key_rate(link, protocol)


def optimal_finite_rate(link: TwoArmLink, analysis: BBM92Finite):
    """(R*, mu*, p_z*, Q_Z, E_Z): the finite-key rate maximized over the mean pair number and the
    basis bias on a coarse-to-fine grid (constants above), ranked by :func:`qmc.analysis.keyrate.score`
    (where no point has a key, by how far l / N lies below 0, so that the grid still moves toward
    one). Pure jnp: jit it, vmap it over links. Where no point gives a key R* = 0 (mu*, p_z*
    meaningless)."""
    def scores(x, y):
        return jax.vmap(lambda a, b: score(_finite_out(link, analysis, a, b)))(x, y)

    def best_of(x, y):
        gx, gy = (g.ravel() for g in jnp.meshgrid(x, y, indexing="ij"))
        best = jnp.argmax(scores(gx, gy))
        return gx[best], gy[best]

    x, y = jnp.linspace(*_LOG10_MU_GRID), jnp.linspace(*_LOGIT_P_Z_GRID)
    bx, by = best_of(x, y)

    def refine(_, carry):  # a loop, not unrolled: the grid's rate is compiled once
        bx, by, dx, dy = carry
        bx, by = best_of(bx + jnp.linspace(-dx, dx, 9), by + jnp.linspace(-dy, dy, 9))
        return bx, by, dx / 4.0, dy / 4.0

    bx, by, _, _ = jax.lax.fori_loop(0, _REFINEMENTS, refine, (bx, by, x[1] - x[0], y[1] - y[0]))
    out = _finite_out(link, analysis, bx, by)
    return out.rate, 10.0 ** bx, jax.nn.sigmoid(by), out.gain, out.qber


_CHUNK = 8  # lengths per call: the curve and the maximum-distance search share one compiled program


@jit
def _finite_chunk(link: TwoArmLink, analysis: BBM92Finite, lengths, fraction):
    return jax.vmap(lambda length: optimal_finite_rate(_placed(link, length, fraction), analysis))(lengths)


def _finite_curve(link: TwoArmLink, analysis: BBM92Finite, lengths, fraction):
    """:func:`optimal_finite_rate` at every length, :data:`_CHUNK` lengths per call (numpy arrays)."""
    lengths = np.asarray(lengths, float)
    padded = np.concatenate([lengths, np.full(-lengths.size % _CHUNK, lengths[-1])])
    parts = [_finite_chunk(link, analysis, jnp.asarray(padded[i:i + _CHUNK]), jnp.float64(fraction))
             for i in range(0, padded.size, _CHUNK)]
    return tuple(np.concatenate([np.asarray(p[j]) for p in parts])[:lengths.size] for j in range(5))


def _reach(positive, hi_km: float, tol_km: float) -> float:
    """The longest length where ``positive`` holds (bisection; the rate falls with the length)."""
    lo, hi = 0.0, float(hi_km)
    if not positive(lo):
        return 0.0
    if positive(hi):
        return hi
    while hi - lo > tol_km:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if positive(mid) else (lo, mid)
    return 0.5 * (lo + hi)


def finite_variants(spec: Mapping[str, Any]) -> dict:
    """label -> :class:`BBM92Finite` of ``analysis.variants`` (none: {}). Other analyses are refused:
    this study computes its asymptotic rows itself."""
    analysis = spec.get("analysis")
    variants = analysis.get("variants") if isinstance(analysis, Mapping) else None
    out = {}
    for label, variant in dict(variants or {}).items():
        if not isinstance(variant, BBM92Finite):
            raise ValidationError(f"analysis.variants.{label}: bbm92_distance takes only qmc.analysis.BBM92Finite "
                                  f"variants (the asymptotic rows are always computed), got {type(variant).__name__}")
        validate(variant, f"analysis.variants.{label}.")
        out[str(label)] = variant
    return out


def _check(link: TwoArmLink, lengths, f_ec, options) -> None:
    bad = Range("length_km", 0.0).error(SimpleNamespace(length_km=lengths), "sweep.")
    if bad:
        raise ValidationError(bad)
    if not (np.isfinite(f_ec) and f_ec >= 1.0):
        raise ValidationError(f"analysis.f_ec = {f_ec:g} is out of range: must be >= 1")
    validate(options, "bbm92.")
    validate(link.source, "source.")
    validate(link)


def bbm92_distance(link: TwoArmLink, lengths_km: Sequence[float], f_ec: float = 1.16,
                   options: EntanglementOptions | None = None,
                   finite: Mapping[str, BBM92Finite] | None = None) -> Iterator[Chunk]:
    """Rows of :data:`BBM92_COLUMNS` (module docstring): one chunk per source position, then the
    PLOB rows.

    Args:
        link: the two-arm link (:func:`two_arm_link`); its length and its source's mean pair
            number and position are replaced.
        lengths_km: total distances Alice - Bob, km.
        f_ec: error-correction inefficiency f.
        options: :class:`EntanglementOptions` (positions, click model).
        finite: label -> :class:`qmc.analysis.BBM92Finite`: finite-key rows per label (None: none).

    Raises:
        ValidationError: bad input, named as the config key, before anything is compiled.
    """
    options = EntanglementOptions() if options is None else options
    lengths = np.atleast_1d(np.asarray(lengths_km, dtype=float))
    link = dataclasses.replace(link, click_model=options.click_model)
    _check(link, lengths, float(f_ec), options)
    finite = dict(finite or {})
    for label, variant in finite.items():
        validate(variant, f"analysis.variants.{label}.")
    return _chunks(link, lengths, float(f_ec), options, finite)


def _finite_chunks(link, lengths, options, finite, index, total) -> Iterator[Chunk]:
    for label, analysis in finite.items():
        for position in dict.fromkeys(options.positions):
            rate, mu, p_z, gain, qber = _finite_curve(link, analysis, lengths, _FRACTION[position])
            reach = maximum_finite_distance(link, analysis, position)
            best = int(np.argmax(rate))
            log.info("bbm92_distance: %s, source %s, maximum distance %.1f km (optimal p_z %.3f at %g km)", label,
                     position, reach, p_z[best], lengths[best])
            rows = [{"length_km": float(length), "analysis": label, "source_position": position,
                     "key_rate": float(rate[i]), "mean_pair_number": float(mu[i]) if rate[i] > 0 else None,
                     "gain": float(gain[i]) if rate[i] > 0 else None, "qber": float(qber[i]) if rate[i] > 0 else None,
                     "max_distance_km": reach, "p_z": float(p_z[i]) if rate[i] > 0 else None}
                    for i, length in enumerate(lengths)]
            yield Chunk(rows, index, total)
            index += 1


def _chunks(link, lengths, f_ec, options, finite=None) -> Iterator[Chunk]:
    finite = finite or {}
    positions = list(dict.fromkeys(options.positions))
    total = len(positions) * (1 + len(finite)) + 1
    log.info("bbm92_distance: %d lengths x %d positions, mean pair number optimized at each", lengths.size,
             len(positions))
    for index, position in enumerate(positions):
        rate, mu, gain, qber = (np.asarray(v) for v in _curve(link, jnp.asarray(lengths), jnp.float64(f_ec),
                                                              jnp.float64(_FRACTION[position])))
        reach = maximum_distance(link, f_ec, position)
        log.info("bbm92_distance: source %s, maximum distance %.1f km", position, reach)
        rows = [{"length_km": float(length), "analysis": "bbm92", "source_position": position,
                 "key_rate": float(rate[i]), "mean_pair_number": float(mu[i]) if rate[i] > 0 else None,
                 "gain": float(gain[i]) if rate[i] > 0 else None, "qber": float(qber[i]) if rate[i] > 0 else None,
                 "max_distance_km": reach, "p_z": SIFTING}
                for i, length in enumerate(lengths)]
        yield Chunk(rows, index, total)
    yield from _finite_chunks(link, lengths, options, finite, len(positions), total)
    eta = db_to_transmittance(link.loss_db_per_km * jnp.asarray(lengths))
    bound = np.asarray(plob_bound(eta))
    rows = [{"length_km": float(length), "analysis": "plob", "source_position": None, "key_rate": float(bound[i]),
             "mean_pair_number": None, "gain": None, "qber": None, "max_distance_km": None, "p_z": None}
            for i, length in enumerate(lengths)]
    yield Chunk(rows, total - 1, total)


def _f_ec(spec: Mapping[str, Any]) -> float:
    analysis = spec.get("analysis")
    value = analysis.get("f_ec") if isinstance(analysis, Mapping) else None
    if value is None:
        raise ValidationError("analysis.f_ec: missing (the error-correction inefficiency f, e.g. analysis.f_ec=1.16)")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"analysis.f_ec = {value!r} is not a number") from None


def _run(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter: ``source`` (a pair source), ``channel``, ``detector``, ``bbm92.*``,
    ``analysis.f_ec``, ``analysis.variants`` (finite-key variants, optional), ``sweep.length_km``."""
    require_exact_engine(spec, "bbm92_distance", "evaluates the closed-form two-arm table")
    options = _options_from(EntanglementOptions, spec.get("bbm92"), "bbm92")
    validate(options, "bbm92.")
    link = two_arm_link(spec["source"], spec["channel"], spec["detector"], options.click_model)
    return bbm92_distance(link, setting(spec, "sweep", Sweep).axis("length_km"), _f_ec(spec), options,
                          finite_variants(spec))


def _no_figure(rows) -> str | None:
    lengths = {r["length_km"] for r in rows}
    return None if len(lengths) > 1 else "one length: no curve to draw"


register(Study(
    name="bbm92_distance",
    run=_run,
    columns=BBM92_COLUMNS,
    figure="qmc.plots.bbm92:bbm92_distance",
    figure_name="bbm92_distance",
    no_figure=_no_figure,
))
