"""The ground terminal's receiver and the link's pointing (config groups ``receiver`` and
``pointing``): what sets the collected share of the beam, the pointing loss and the background
light (:mod:`qmc.freespace.budget`)."""

from __future__ import annotations

import math

from qmc._pytree import pytree_dataclass
from qmc.freespace.budget import background_photons_per_gate
from qmc.validation import Range

__all__ = ["Receiver", "Pointing"]


@pytree_dataclass
class Receiver:
    """A telescope with a spectral filter and gated detectors behind it.

    Args:
        aperture_m: D, the receiving telescope's aperture diameter in m (1.0: a 1 m class
            ground telescope, as Micius' stations).
        sky_radiance: H, the sky's spectral radiance at the link's wavelength around the
            satellite, W/(m^2 sr nm); 0 for no background (the default).
        fov_urad: the receiver's field of view, full angle, urad.
        filter_nm: the spectral filter's width, nm.
        gate_ns: the detection gate (coincidence window), ns.
    """

    aperture_m: float = 1.0
    sky_radiance: float = 0.0
    fov_urad: float = 100.0
    filter_nm: float = 1.0
    gate_ns: float = 1.0

    def checks(self):
        return [
            Range("aperture_m", 0.0, 100.0, lo_open=True),
            Range("sky_radiance", 0.0, math.inf),
            Range("fov_urad", 0.0, 1e6, lo_open=True),
            Range("filter_nm", 0.0, 1e3, lo_open=True),
            Range("gate_ns", 0.0, 1e6, lo_open=True),
        ]

    def background_photons_per_gate(self, wavelength_nm):
        """Mean sky photons per gate at the aperture (0 when ``sky_radiance`` is 0)."""
        return background_photons_per_gate(self.sky_radiance, self.fov_urad, self.aperture_m,
                                           self.filter_nm, self.gate_ns, wavelength_nm)


@pytree_dataclass
class Pointing:
    """Pointing of the transmitter at the receiver.

    Args:
        jitter_urad: sigma, the rms pointing error per axis (circular Gaussian), urad.
    """

    jitter_urad: float = 0.0

    def checks(self):
        return [Range("jitter_urad", 0.0, 1e4)]
