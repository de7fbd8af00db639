"""A link: source -> channel -> detectors, with the classical traffic that shares the fiber.

Bob's background, one definition for every engine: each of his two detectors fires in a gate
without any of Alice's photons with probability

    p_bg = 1 - (1 - p_dark)(1 - p_noise) = p_dark + (1 - p_dark) p_noise,

dark counts and noise photons being independent. p_noise is the probability that the noise of the
classical traffic alone fires one given detector (:func:`qmc.channels.raman.noise_clicks_per_gate`:
unpolarized noise, half of its photons to each detector, Poisson, detected with the detectors'
efficiency), from the noise photons per gate at the fiber's end
(:func:`qmc.channels.raman.noise_photons_per_gate`: Raman scattering and demultiplexer leakage over
``channel.length_km`` at ``channel.loss_db_per_km``, at the source's ``wavelength_nm``, inside the
detectors' ``filter_nm`` and ``gate_ns``). The exact engine's outcome table (hence the block, pulse
fast-path and stream engines), the pulse engine's physical path and Lim's system model all read
:meth:`Link.background_click_probability`. Without traffic (no channels) it is ``p_dark`` itself,
the same object: every number is what it was before the traffic existed.
"""

from __future__ import annotations

from qmc._pytree import pytree_dataclass
from qmc.channels import Fiber
from qmc.channels.raman import (
    ClassicalChannel, ClassicalTraffic, check_noise_inputs, noise_clicks_per_gate, noise_photons_per_gate,
    traffic_profile, with_profile,
)
from qmc.channels.traffic import Constant
from qmc.detectors import ThresholdDetectors
from qmc.detectors.threshold import with_background
from qmc.sources import WeakCoherentSource
from qmc.validation import ValidationError

__all__ = ["Link", "has_traffic", "noise_photons", "noise_click_probability", "background_click_probability",
           "check_noise", "varies_in_time", "at_noise_level"]


@pytree_dataclass
class Link:
    """Alice's source, the channel, Bob's receiver and the classical traffic in the fiber.

    Each part is a PyTree of its own. ``classical`` is a
    :class:`qmc.channels.raman.ClassicalTraffic` (several channels; the default has none: no noise),
    a single :class:`qmc.channels.raman.ClassicalChannel`, or None (no traffic). Its noise enters
    every engine through :meth:`background_click_probability` (see the module docstring).
    """

    source: object = None
    channel: object = None
    detector: object = None
    classical: object = None

    def __post_init__(self) -> None:
        if self.source is None:
            object.__setattr__(self, "source", WeakCoherentSource())
        if self.channel is None:
            object.__setattr__(self, "channel", Fiber())
        if self.detector is None:
            object.__setattr__(self, "detector", ThresholdDetectors())
        if self.classical is None:
            object.__setattr__(self, "classical", ClassicalTraffic())

    def transmittance(self):
        """Channel transmittance times detector efficiency: eta of Lo, Ma, Chen (2005)."""
        return self.channel.transmittance() * self.detector.efficiency

    def background_click_probability(self):
        """p_bg per detector per gate: dark counts or noise (:func:`background_click_probability`)."""
        return background_click_probability(self)


def has_traffic(link) -> bool:
    """Whether classical channels share the fiber (static: the number of channels is structure)."""
    classical = getattr(link, "classical", None)
    if classical is None:
        return False
    return isinstance(classical, ClassicalChannel) or len(classical.channels) > 0


def noise_photons(link):
    """Mean noise photons per gate at Bob's input (both detectors together), from ``link.classical``.

    The time average over the traffic's power profile (:mod:`qmc.channels.traffic`): the
    configured launch power times the profile's mean factor (exactly 1 for constant traffic).
    Computed at the end of the fiber (``link.channel`` must have ``length_km`` and
    ``loss_db_per_km``: a :class:`qmc.Fiber`); the fiber's ``insertion_loss_db`` does not
    attenuate the noise (where the lumped loss sits is not known). 0.0 without traffic.
    """
    if not has_traffic(link):
        return 0.0
    channel = link.channel
    if not (hasattr(channel, "length_km") and hasattr(channel, "loss_db_per_km")):
        raise TypeError(f"classical traffic needs a fiber channel (length_km, loss_db_per_km), not "
                        f"{type(channel).__name__}")
    photons = noise_photons_per_gate(link.classical, channel.length_km, channel.loss_db_per_km,
                                     link.source.wavelength_nm, link.detector.filter_nm, link.detector.gate_ns)
    return photons * traffic_profile(link.classical).mean_factor(link.source.rep_rate_hz)


def varies_in_time(link) -> bool:
    """Whether the link's traffic follows a profile other than a constant one (static)."""
    return has_traffic(link) and not isinstance(traffic_profile(link.classical), Constant)


def at_noise_level(link, factor):
    """The link with its traffic held at ``factor`` times the configured launch power (one level of
    its profile: the pulse engine's table for the pulses emitted at that level)."""
    return Link(link.source, link.channel, link.detector, with_profile(link.classical, Constant(factor)))


def noise_click_probability(link):
    """p_noise: the probability that the traffic's noise alone fires one given detector in a gate.

    :func:`qmc.channels.raman.noise_clicks_per_gate` of :func:`noise_photons` with the detectors'
    efficiency; exactly 0.0 without traffic.
    """
    if not has_traffic(link):
        return 0.0
    return noise_clicks_per_gate(noise_photons(link), link.detector.efficiency)


def background_click_probability(link):
    """p_bg = 1 - (1 - p_dark)(1 - p_noise) per detector per gate (see the module docstring).

    Written p_dark + (1 - p_dark) p_noise, which is p_dark exactly when p_noise = 0; without
    traffic it returns ``link.detector.p_dark`` itself, so a link without traffic traces and
    computes exactly what it did before traffic existed. Pure jnp: vmaps over lengths, launch
    powers, filter widths.
    """
    p_dark = link.detector.p_dark
    if not has_traffic(link):
        return p_dark
    return with_background(p_dark, noise_click_probability(link))


def check_noise(link, prefix: str = "classical.") -> None:
    """Raise :class:`qmc.ValidationError` (one line naming the config key) for a link whose traffic
    the noise model refuses: :func:`qmc.channels.raman.check_noise_inputs` on concrete values, and
    a channel that is not a fiber. Nothing to check without traffic. Call it at the API and CLI
    boundary, never inside jit."""
    if not has_traffic(link):
        return
    if not (hasattr(link.channel, "length_km") and hasattr(link.channel, "loss_db_per_km")):
        raise ValidationError(f"{prefix.rstrip('.')}: classical traffic needs a fiber channel (length_km, "
                              f"loss_db_per_km), not {type(link.channel).__name__}")
    check_noise_inputs(link.classical, link.source.wavelength_nm, link.detector.filter_nm, link.detector.gate_ns,
                       prefix)
