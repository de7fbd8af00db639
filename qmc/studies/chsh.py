"""Study ``chsh_vs_pair_number``: the CHSH S value and the visibility of a pair source versus its
mean pair number, for given links, from sampled coincidence counts beside the model.

For each total length of ``sweep.length_km`` (the source where ``source.position`` /
``source.position_km`` puts it) and each mean pair number of ``sweep.mean_pair_number``, the
two-arm link of the config (:func:`qmc.studies.bbm92.two_arm_link`) is measured in the four CHSH
settings, ``chsh.pulses_per_setting`` pulses each, drawn with a fixed key (``seed``):
:func:`qmc.entanglement.sample_chsh_counts` (one multinomial per setting). Columns
(:data:`CHSH_COLUMNS`): ``chsh_s`` and ``chsh_s_stderr`` from the counts
(:func:`qmc.entanglement.chsh_from_counts`), ``visibility`` V = 1 - 2 E (the matched-basis QBER),
``chsh_s_expected`` = 2 sqrt(2) V, ``chsh_s_model`` (the model at the CHSH angles, exact),
``coincidences`` (all four settings), ``coincidence_probability`` (per pulse, averaged over the
settings), ``gain``, ``qber``. Figure: :func:`qmc.plots.entanglement.chsh_vs_pair_number`, with the
classical limit 2.
"""

from __future__ import annotations

import dataclasses
import logging
from types import SimpleNamespace
from typing import Any, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qmc.entanglement import (
    CLICK_MODELS, TwoArmLink, chsh_from_counts, chsh_probabilities, expected_s, gain_and_qber, model_s,
    sample_chsh_counts,
)
from qmc.studies.bbm92 import _options_from, two_arm_link
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import Sweep
from qmc.studies.spec import require_exact_engine, seed, setting
from qmc.validation import Range, Rule, ValidationError, validate

__all__ = ["chsh_vs_pair_number", "CHSH_COLUMNS", "ChshOptions"]

CHSH_COLUMNS = ("length_km", "mean_pair_number", "chsh_s", "chsh_s_stderr", "visibility", "chsh_s_expected",
                "chsh_s_model", "coincidences", "coincidence_probability", "gain", "qber", "pulses_per_setting")

log = logging.getLogger("qmc")


@dataclasses.dataclass(frozen=True)
class ChshOptions:
    """The ``chsh`` group of ``chsh_vs_pair_number`` (a plain mapping in the config).

    Attributes:
        pulses_per_setting: pulses measured in each of the four CHSH settings (a whole number >= 1).
        click_model: ``threshold`` or ``ma2007`` (docs/entanglement.md).
    """

    pulses_per_setting: float = 1e9
    click_model: str = "threshold"

    def checks(self):
        def whole(s, xp):
            v = s.pulses_per_setting
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 1 and float(v).is_integer()
            return xp.asarray(ok and v <= 2 ** 53)
        return [Rule("pulses_per_setting", whole, "must be a whole number in [1, 2^53]"),
                Rule("click_model", lambda s, xp: xp.asarray(s.click_model in CLICK_MODELS),
                     f"must be one of {', '.join(CLICK_MODELS)}")]


def _point(link: TwoArmLink, key, pulses):
    """Sampled (S, sigma_S, coincidences) and the model's values at one link."""
    counts = sample_chsh_counts(key, link, pulses)
    s, sigma = chsh_from_counts(counts)
    gain, qber = gain_and_qber(link.table())
    v = 1.0 - 2.0 * qber[0]
    p = chsh_probabilities(link)
    return dict(s=s, sigma=sigma, coincidences=jnp.sum(counts), visibility=v, expected=expected_s(v),
                model=model_s(link), p_coincidence=jnp.mean(jnp.sum(p, axis=(1, 2))), gain=gain[0], qber=qber[0])


@jax.jit
def _length(link: TwoArmLink, keys, mus, pulses):
    """:func:`_point` at every mean pair number of ``mus`` (one key each), in one program."""
    def at(key, mu):
        return _point(dataclasses.replace(link, source=dataclasses.replace(link.source, mean_pair_number=mu)), key,
                      pulses)

    return jax.vmap(at)(keys, mus)


def _check(link, lengths, mus, options) -> None:
    for name, values, rule in (("length_km", lengths, Range("length_km", 0.0)),
                               ("mean_pair_number", mus, Range("mean_pair_number", 0.0, lo_open=True))):
        bad = rule.error(SimpleNamespace(**{name: values}), "sweep.")
        if bad:
            raise ValidationError(bad)
    validate(options, "chsh.")
    validate(link.source, "source.")
    validate(link)


def chsh_vs_pair_number(key, link: TwoArmLink, lengths_km: Sequence[float], mean_pair_numbers: Sequence[float],
                        options: ChshOptions | None = None) -> Iterator[Chunk]:
    """Rows of :data:`CHSH_COLUMNS` (module docstring), one chunk per length.

    Args:
        key: JAX PRNG key of the counts (one ``fold_in`` per length and mean pair number).
        link: the two-arm link (its source's position is kept; length and mean pair number replaced).
        lengths_km: total lengths Alice - Bob, km.
        mean_pair_numbers: the source's mean pair numbers per pulse.
        options: :class:`ChshOptions`.

    Raises:
        ValidationError: bad input, named as the config key, before anything is compiled.
    """
    options = ChshOptions() if options is None else options
    lengths = np.atleast_1d(np.asarray(lengths_km, dtype=float))
    mus = np.atleast_1d(np.asarray(mean_pair_numbers, dtype=float))
    link = dataclasses.replace(link, click_model=options.click_model)
    _check(link, lengths, mus, options)
    return _chunks(key, link, lengths, mus, options)


def _chunks(key, link, lengths, mus, options) -> Iterator[Chunk]:
    pulses = float(options.pulses_per_setting)
    log.info("chsh_vs_pair_number: %d lengths x %d mean pair numbers, %.3g pulses per setting", lengths.size,
             mus.size, pulses)
    for i, length in enumerate(lengths):
        keys = jax.vmap(lambda j: jax.random.fold_in(key, j))(jnp.arange(i * mus.size, (i + 1) * mus.size))
        outs = jax.device_get(_length(dataclasses.replace(link, length_km=float(length)), keys, jnp.asarray(mus),
                                      pulses))
        rows = []
        for j, mu in enumerate(mus):
            out = {k: float(v[j]) for k, v in outs.items()}
            rows.append({"length_km": float(length), "mean_pair_number": float(mu), "chsh_s": out["s"],
                         "chsh_s_stderr": out["sigma"], "visibility": out["visibility"],
                         "chsh_s_expected": out["expected"], "chsh_s_model": out["model"],
                         "coincidences": int(out["coincidences"]), "coincidence_probability": out["p_coincidence"],
                         "gain": out["gain"], "qber": out["qber"], "pulses_per_setting": int(pulses)})
        yield Chunk(rows, i, lengths.size)


def _run(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter: ``source`` (a pair source), ``channel``, ``detector``, ``chsh.*``,
    ``sweep.length_km``, ``sweep.mean_pair_number``, ``seed``."""
    require_exact_engine(spec, "chsh_vs_pair_number", "samples the closed-form two-arm table")
    options = _options_from(ChshOptions, spec.get("chsh"), "chsh")
    validate(options, "chsh.")
    link = two_arm_link(spec["source"], spec["channel"], spec["detector"], options.click_model)
    sweep = setting(spec, "sweep", Sweep)
    return chsh_vs_pair_number(jax.random.key(seed(spec)), link, sweep.axis("length_km"),
                               sweep.axis("mean_pair_number"), options)


register(Study(
    name="chsh_vs_pair_number",
    run=_run,
    columns=CHSH_COLUMNS,
    figure="qmc.plots.entanglement:chsh_vs_pair_number",
    figure_name="chsh_vs_pair_number",
))
