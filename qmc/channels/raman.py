"""Classical traffic in the quantum channel's fiber, and the noise it puts into Bob's detectors.

A classical channel (wavelength lambda_c, launch power P_in, direction co or counter relative to the
quantum signal) in the same fiber adds two kinds of photons inside Bob's filter (width dlambda,
centred on the quantum wavelength lambda_q):

* **Spontaneous Raman scattering**, generated all along the fiber and attenuated on its way to Bob.
  With power attenuation coefficients a_c at lambda_c and a_q at lambda_q (1/km) and the Raman
  coefficient beta(lambda_c, lambda_q) (1/(km nm), :mod:`qmc.channels.raman_spectrum`):

      co-propagating (forward scattering):
          P = P_in beta dlambda int_0^L e^{-a_c z} e^{-a_q (L - z)} dz
            = P_in beta dlambda (e^{-a_q L} - e^{-a_c L}) / (a_c - a_q)
      counter-propagating (backward scattering; the classical light enters at Bob's end):
          P = P_in beta dlambda int_0^L e^{-(a_c + a_q) s} ds
            = P_in beta dlambda (1 - e^{-(a_c + a_q) L}) / (a_c + a_q)

  With a_c = a_q = a these are the forward and backward forms of Eraerds et al., NJP 12, 063027
  (2010): P_out beta L dlambda (P_out = P_in e^{-aL}) and P_in beta dlambda (1 - e^{-2aL}) / (2a).
* **In-band leakage**: the classical light reaching Bob's demultiplexer, suppressed by its finite
  isolation (Chapuran et al., NJP 11, 105001 (2009), discuss it beside Raman scattering and four-wave
  mixing as a noise source of a shared fiber). Co-propagating light arrives as
  P_in e^{-a_c L}; counter-propagating light is launched at Bob's site, so P_in meets his
  multiplexer directly (its near-end isolation is what ``isolation_db`` then stands for).

Four-wave mixing (negligible for a few channels far from the quantum wavelength) and Rayleigh
backscattering are not modelled; the classical light is taken as an undepleted pump (no stimulated
Raman gain or depletion), so launch powers above 1 W are refused. Noise power turns into photons
per gate at the photon energy of the quantum wavelength; unpolarized noise splits evenly over Bob's
two detectors.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from qmc._pytree import pytree_dataclass, static
from qmc.channels.base import db_to_transmittance
from qmc.channels.traffic import PROFILES, Constant
from qmc.detectors.threshold import noise_click_probability
from qmc.channels.raman_spectrum import (
    DEFAULT_TEMPERATURE_K, LIGHT_M_PER_S, PLANCK_J_S, WAVELENGTH_RANGE_NM, _one_minus_exp_over,
    raman_coefficient_per_km_nm, spectrum_problem,
)
from qmc.validation import Range, Rule, ValidationError

__all__ = [
    "ClassicalChannel", "ClassicalTraffic", "DIRECTIONS", "attenuation_per_km", "dbm_to_w",
    "forward_length_km", "backward_length_km", "raman_power_w", "leakage_power_w", "noise_power_w",
    "noise_photons_per_s", "photons_per_gate", "noise_photons_per_gate", "noise_clicks_per_gate",
    "check_noise_inputs", "traffic_profile", "with_profile",
]

DIRECTIONS = ("co", "counter")
MAX_LAUNCH_POWER_DBM = 30.0  # 1 W: beyond it the classical light is no longer an undepleted pump


@dataclasses.dataclass(frozen=True)
class _OptionalRange(Range):
    """A Range that also accepts None (null in a config: "take it from elsewhere")."""

    def condition(self, obj, xp=jnp):
        return xp.asarray(True) if getattr(obj, self.field) is None else super().condition(obj, xp)

    def describe(self) -> str:
        return super().describe() + " or null"

    def error(self, obj, prefix):
        return None if getattr(obj, self.field) is None else super().error(obj, prefix)


@pytree_dataclass
class ClassicalChannel:
    """One classical (data) channel sharing the fiber with the quantum signal.

    Args:
        wavelength_nm: lambda_c, its wavelength in nm.
        launch_power_dbm: P_in, the power launched into the fiber, in dBm.
        direction: ``"co"`` (travels with the quantum signal, Alice to Bob: forward Raman
            scattering reaches Bob) or ``"counter"`` (launched at Bob's end: backward scattering).
        raman_coefficient: beta(lambda_c, lambda_q) in 1/(km nm); None takes it from the shipped
            spectrum (:func:`qmc.channels.raman_spectrum.raman_coefficient_per_km_nm`).
        loss_db_per_km: attenuation at lambda_c in dB/km; None takes the fiber's (the loss at the
            quantum wavelength).
        isolation_db: suppression of this channel's own light at Bob's quantum port (demultiplexer
            and filters), dB; inf for none leaking.
        profile: how its power varies in time (:mod:`qmc.channels.traffic`); None: constant.
    """

    wavelength_nm: float = 1550.0
    launch_power_dbm: float = 0.0
    direction: str = static("co")
    raman_coefficient: float | None = None
    loss_db_per_km: float | None = None
    isolation_db: float = math.inf
    profile: object = None

    def __post_init__(self):
        if self.profile is None:
            object.__setattr__(self, "profile", Constant())

    def checks(self):
        lo, hi = WAVELENGTH_RANGE_NM
        return [
            Range("wavelength_nm", lo, hi),
            Range("launch_power_dbm", -math.inf, MAX_LAUNCH_POWER_DBM),
            Rule("direction", lambda c, xp: xp.asarray(c.direction in DIRECTIONS),
                 f"must be one of {', '.join(DIRECTIONS)}"),
            _OptionalRange("raman_coefficient", 0.0),
            _OptionalRange("loss_db_per_km", 0.0),
            Range("isolation_db", 0.0),
            _profile_rule(),
        ]


def _profile_rule():
    return Rule("profile", lambda c, xp: xp.asarray(isinstance(c.profile, PROFILES)),
                f"must be one of {', '.join(p.__name__ for p in PROFILES)} (qmc.channels.traffic)")


@pytree_dataclass
class ClassicalTraffic:
    """Several classical channels in the fiber (none: no noise). ``channels`` is a tuple.

    ``profile`` (:mod:`qmc.channels.traffic`; None: constant) modulates all channels together. A
    channel's own profile is moved onto the traffic when it is the only non-constant one (so a
    single channel keeps its profile when it becomes traffic of one); channels with different
    profiles are refused.
    """

    channels: tuple = ()
    profile: object = None

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(self.channels))  # a list from YAML
        moving = [ch.profile for ch in self.channels if not isinstance(ch.profile, (Constant, type(None)))]
        if any(not _is_default(ch.profile) for ch in self.channels if isinstance(ch.profile, Constant)):
            raise ValidationError("classical.channels: a channel's constant profile scales its power; set its "
                                  "launch_power_dbm instead (classical.profile applies to all channels)")
        if moving:
            if len(moving) > 1 or not _is_default(self.profile):
                raise ValidationError("classical.profile: the channels' power profiles differ; give one profile "
                                      "to the traffic (classical.profile) instead")
            object.__setattr__(self, "channels", tuple(dataclasses.replace(ch, profile=Constant())
                                                       for ch in self.channels))
            object.__setattr__(self, "profile", moving[0])
        if self.profile is None:
            object.__setattr__(self, "profile", Constant())

    @classmethod
    def evenly(cls, wavelengths_nm, total_launch_power_dbm: float, direction: str = "co",
               **fields) -> "ClassicalTraffic":
        """Channels at ``wavelengths_nm`` sharing ``total_launch_power_dbm`` equally."""
        wavelengths = [float(w) for w in wavelengths_nm]
        each_dbm = total_launch_power_dbm - 10.0 * math.log10(len(wavelengths))
        return cls(tuple(ClassicalChannel(w, each_dbm, direction, **fields) for w in wavelengths))

    def checks(self):
        return [_profile_rule()]  # each channel's checks run through qmc.validate


def _is_default(profile) -> bool:
    """Whether a profile is None or the constant, configured power (factor 1; a traced factor,
    from rebuilding the traffic inside jit, counts as the one checked when it was concrete)."""
    if profile is None:
        return True
    if not isinstance(profile, Constant):
        return False
    try:
        return float(profile.factor) == 1.0
    except (TypeError, jax.errors.ConcretizationTypeError):
        return True


def traffic_profile(classical):
    """The power profile of the traffic (a single channel's own, or the traffic's); constant without one."""
    if isinstance(classical, ClassicalChannel):
        return classical.profile
    if isinstance(classical, ClassicalTraffic):
        return classical.profile
    return Constant()


def with_profile(classical, profile):
    """The same traffic following ``profile`` instead (e.g. :class:`Constant` at one level's factor)."""
    return dataclasses.replace(classical, profile=profile)


def _channels(classical) -> tuple:
    if classical is None:
        return ()
    if isinstance(classical, ClassicalChannel):
        return (classical,)
    return tuple(classical.channels)


def attenuation_per_km(loss_db_per_km):
    """Power attenuation coefficient a in 1/km from a loss in dB/km: e^{-a L} = 10^{-loss L / 10}."""
    return jnp.asarray(loss_db_per_km) * (math.log(10.0) / 10.0)


def dbm_to_w(power_dbm):
    """Power in W from dBm: 1 mW 10^{P / 10}."""
    return 1e-3 * 10.0 ** (jnp.asarray(power_dbm) / 10.0)


def forward_length_km(length_km, a_classical_per_km, a_quantum_per_km):
    """Effective length of forward (co-propagating) Raman scattering, km.

    int_0^L e^{-a_c z} e^{-a_q (L - z)} dz = (e^{-a_q L} - e^{-a_c L}) / (a_c - a_q), evaluated as
    L e^{-a_q L} f((a_c - a_q) L) with f(x) = (1 - e^-x) / x, so a_c = a_q gives L e^{-a L}
    (Eraerds et al., NJP 12, 063027 (2010): P_out beta L dlambda, forward) without 0/0.
    """
    length_km = jnp.asarray(length_km)
    d = (jnp.asarray(a_classical_per_km) - a_quantum_per_km) * length_km
    return length_km * jnp.exp(-a_quantum_per_km * length_km) * _one_minus_exp_over(d)


def backward_length_km(length_km, a_classical_per_km, a_quantum_per_km):
    """Effective length of backward (counter-propagating) Raman scattering, km.

    int_0^L e^{-(a_c + a_q) s} ds = (1 - e^{-(a_c + a_q) L}) / (a_c + a_q) = L f((a_c + a_q) L);
    a_c = a_q gives (1 - e^{-2aL}) / (2a) (Eraerds et al. 2010, backward), 1 / (2a) for a long fiber.
    """
    length_km = jnp.asarray(length_km)
    s = (jnp.asarray(a_classical_per_km) + a_quantum_per_km) * length_km
    return length_km * _one_minus_exp_over(s)


def raman_power_w(classical, length_km, loss_db_per_km, wavelength_nm, filter_nm,
                  temperature_k=DEFAULT_TEMPERATURE_K):
    """Spontaneous Raman power inside Bob's filter at the end of the fiber, from all channels, W.

    Sum over channels of P_in beta dlambda L_eff, with L_eff from :func:`forward_length_km` (co)
    or :func:`backward_length_km` (counter); see the module docstring for the integrals.

    Args:
        classical: a ClassicalChannel, a ClassicalTraffic or None.
        length_km: fiber length L, km.
        loss_db_per_km: the fiber's loss at the quantum wavelength, dB/km (also the classical
            channels' loss where theirs is None).
        wavelength_nm: lambda_q, the quantum channel's wavelength, nm.
        filter_nm: dlambda, the width of Bob's filter, nm.
        temperature_k: fiber temperature, K (the spectrum's thermal occupation).

    Returns:
        Noise power in W, the broadcast shape of the numeric arguments.
    """
    a_q = attenuation_per_km(loss_db_per_km)
    total = jnp.zeros(jnp.broadcast_shapes(jnp.shape(length_km), jnp.shape(a_q), jnp.shape(filter_nm)))
    for ch in _channels(classical):
        a_c = a_q if ch.loss_db_per_km is None else attenuation_per_km(ch.loss_db_per_km)
        beta = (raman_coefficient_per_km_nm(ch.wavelength_nm, wavelength_nm, temperature_k)
                if ch.raman_coefficient is None else jnp.asarray(ch.raman_coefficient))
        span = forward_length_km if ch.direction == "co" else backward_length_km
        total = total + dbm_to_w(ch.launch_power_dbm) * beta * filter_nm * span(length_km, a_c, a_q)
    return total


def leakage_power_w(classical, length_km, loss_db_per_km):
    """Classical power leaking through Bob's demultiplexer into the quantum port, W.

    Co-propagating: P_in e^{-a_c L} 10^{-isolation/10}; counter-propagating: P_in 10^{-isolation/10}
    (launched at Bob's site). The isolation counts everything between the fiber and the detectors
    (demultiplexer, filters), so the result does not scale with the filter width.
    """
    a_q = attenuation_per_km(loss_db_per_km)
    total = jnp.zeros(jnp.broadcast_shapes(jnp.shape(length_km), jnp.shape(a_q)))
    for ch in _channels(classical):
        a_c = a_q if ch.loss_db_per_km is None else attenuation_per_km(ch.loss_db_per_km)
        arriving = 1.0 if ch.direction == "counter" else jnp.exp(-a_c * jnp.asarray(length_km))
        total = total + dbm_to_w(ch.launch_power_dbm) * arriving * db_to_transmittance(ch.isolation_db)
    return total


def noise_power_w(classical, length_km, loss_db_per_km, wavelength_nm, filter_nm,
                  temperature_k=DEFAULT_TEMPERATURE_K):
    """All noise power from the classical traffic at Bob's detectors' input: Raman + leakage, W."""
    return (raman_power_w(classical, length_km, loss_db_per_km, wavelength_nm, filter_nm, temperature_k)
            + leakage_power_w(classical, length_km, loss_db_per_km))


def noise_photons_per_s(power_w, wavelength_nm):
    """Photon rate P / (h nu_q) = P lambda_q / (h c) of noise power P at the quantum wavelength, 1/s."""
    return jnp.asarray(power_w) * (jnp.asarray(wavelength_nm) * 1e-9) / (PLANCK_J_S * LIGHT_M_PER_S)


def photons_per_gate(power_w, wavelength_nm, gate_ns):
    """Mean noise photons per detection window (gate) at Bob's input, both detectors together."""
    return noise_photons_per_s(power_w, wavelength_nm) * jnp.asarray(gate_ns) * 1e-9


def noise_photons_per_gate(classical, length_km, loss_db_per_km, wavelength_nm, filter_nm, gate_ns,
                           temperature_k=DEFAULT_TEMPERATURE_K):
    """Mean noise photons per gate at Bob's input from the classical traffic (Raman + leakage).

    n = P_noise gate / (h nu_q), the photon energy at the quantum wavelength (as in Eraerds et al.
    2010, before the detector efficiency).
    Pure jnp: vmaps over lengths and over the traffic's launch powers.
    """
    power = noise_power_w(classical, length_km, loss_db_per_km, wavelength_nm, filter_nm, temperature_k)
    return photons_per_gate(power, wavelength_nm, gate_ns)


def noise_clicks_per_gate(photons_per_gate_, efficiency):
    """Probability that the traffic's noise alone fires one given detector in a gate: unpolarized,
    many modes (filter bandwidth x gate >> 1), so
    :func:`qmc.detectors.threshold.noise_click_probability`, 1 - exp(-efficiency n / 2)."""
    return noise_click_probability(photons_per_gate_, efficiency)


def check_noise_inputs(classical, wavelength_nm, filter_nm, gate_ns, prefix: str = "classical.") -> None:
    """Raise :class:`ValidationError` (one line naming the key) for inputs the noise model refuses.

    Concrete values only (API and CLI boundary). Checks the quantum side (``source.wavelength_nm``,
    ``detector.filter_nm``, ``detector.gate_ns``, as they will be named in a config), then, for
    every channel without a given Raman coefficient, that the shipped spectrum covers its detuning.
    """
    quantum = {"wavelength_nm": wavelength_nm, "filter_nm": filter_nm, "gate_ns": gate_ns}
    box = type("Quantum", (), {k: float(v) for k, v in quantum.items()})
    lo, hi = WAVELENGTH_RANGE_NM
    for name, check in (("source.", Range("wavelength_nm", lo, hi)),
                        ("detector.", Range("filter_nm", 0.0, lo_open=True)),
                        ("detector.", Range("gate_ns", 0.0, lo_open=True))):
        message = check.error(box, name)
        if message is not None:
            raise ValidationError(message)
    single = isinstance(classical, ClassicalChannel)
    for i, ch in enumerate(_channels(classical)):
        if ch.raman_coefficient is None:
            key = f"{prefix}wavelength_nm" if single else f"{prefix}channels.{i}.wavelength_nm"
            message = spectrum_problem(float(ch.wavelength_nm), float(wavelength_nm), key)
            if message is not None:
                raise ValidationError(message)
