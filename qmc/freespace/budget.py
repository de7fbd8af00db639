"""The link budget of a free-space (satellite) optical link: mean losses and background light.

Every term is a pure ``jnp`` function of numbers (it jits, vmaps over a pass and differentiates);
losses are in dB (positive), transmittances in [0, 1]. The mean channel transmittance is the
product of the terms below, from the transmitter to the receiver aperture's output (detector
efficiency apart); turbulence fading (:mod:`qmc.freespace.fading`) comes on top of it.

1. **Diffraction** (geometric loss). A Gaussian beam of 1/e^2 half-angle divergence theta has,
   at distance L, the 1/e^2 intensity radius w(L) = sqrt(w0^2 + (theta L)^2) (w0 the waist;
   w(L) ~ theta L in the far field, where satellite links live). A centred circular aperture of
   diameter D collects the fraction 1 - exp(-2 (D/2)^2 / w(L)^2) of its power (integral of the
   Gaussian intensity over the disc). A. E. Siegman, Lasers (University Science Books, 1986),
   ch. 17; the diffraction term of satellite-QKD link budgets such as Bourgoin et al., NJP 15,
   023006 (2013).
2. **Atmospheric extinction** (absorption and scattering, Beer-Lambert): T = T0^X(el), with T0
   the zenith transmittance at the station and X the relative air mass at elevation el. Two air
   masses: plane-parallel X = 1 / sin(el) (exact for a flat atmosphere, diverges at the horizon)
   and, the default, the interpolation formula of F. Kasten and A. T. Young, Appl. Opt. 28, 4735
   (1989): X = 1 / (sin(el) + 0.50572 (el + 6.07995 deg)^-1.6364), el in degrees (X = 0.9997
   at the zenith, 38 at the horizon).
3. **Pointing jitter**. A random pointing error with a circular Gaussian distribution of rms
   sigma per axis (urad) on a Gaussian beam of divergence theta multiplies the mean collected
   power by theta^2 / (theta^2 + 4 sigma^2) (aperture small against the beam, radial
   displacement Rayleigh-distributed): the mean pointing factor gamma^2 / (1 + gamma^2) of the
   on-axis value, gamma = w / (2 sigma_s) with sigma_s = sigma L the jitter at the receiver, of
   A. A. Farid and S. Hranilovic, J. Lightwave Technol. 25, 1702 (2007). For any aperture the
   mean intensity is again a Gaussian, of radius^2 w^2 + 4 (sigma L)^2, which
   :func:`jittered_collected_fraction` uses.
4. **Fixed losses**: the optical, coupling and receiver losses of the terminals in dB
   (``satellite.fixed_loss_db``), added as they are.
5. **Uplink**. On an uplink the turbulence sits next to the transmitter, so beam wander and
   beam breathing spread the long-term beam far more than on a downlink (where the beam crosses
   the atmosphere only in its last ~20 km, already metres wide, and diffraction dominates).
   Simple model used here: the long-term beam diverges as a Gaussian beam of the turbulent
   coherence radius rho0 = r0 / 2.1 would, added in quadrature to the diffraction divergence,
   theta_eff^2 = theta^2 + (lambda / (pi rho0))^2, with r0 the Fried parameter of the uplink path
   (the far-field long-term beam spread W_LT^2 ~ W^2 + (2 L / (k rho0))^2, k = 2 pi / lambda,
   of L. C. Andrews and R. L. Phillips, Laser Beam Propagation through Random Media, 2nd ed.,
   SPIE Press 2005; Bourgoin et al. 2013 discuss why it makes the uplink the lossier direction).
   It is an estimate of the mean, not of the fading around it, and ignores that r0 itself depends
   on the elevation unless the caller passes r0 per slot. The downlink ignores it
   (theta_eff = theta).

**Background light**. Sky spectral radiance H in W/(m^2 sr nm) seen through a field of view of
full angle phi (solid angle Omega = 2 pi (1 - cos(phi/2)) ~ pi phi^2 / 4), an aperture of area
A = pi D^2 / 4, a filter of width dlambda and a gate of tau gives
N = H Omega A dlambda tau / (h c / lambda) photons per gate at the aperture (E.-L. Miao et al.,
Background noise of satellite-to-ground quantum key distribution, NJP 7, 215 (2005)); zero when
H = 0. Receiver losses and the detector efficiency act on it downstream, as on the signal.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass
from qmc.channels.base import db_to_transmittance

__all__ = [
    "AIR_MASS_MODELS", "DIRECTIONS", "PLANCK_J_S", "LIGHT_M_PER_S", "LinkBudget",
    "transmittance_to_db", "beam_radius_m", "collected_fraction", "diffraction_transmittance",
    "jittered_collected_fraction", "air_mass", "extinction_transmittance",
    "pointing_transmittance", "uplink_divergence_urad", "effective_divergence_urad",
    "fov_solid_angle_sr", "background_photons_per_gate", "link_budget",
]

AIR_MASS_MODELS = ("kasten_young", "plane_parallel")
DIRECTIONS = ("downlink", "uplink")
PLANCK_J_S = 6.62607015e-34
LIGHT_M_PER_S = 299_792_458.0
COHERENCE_RADIUS_PER_FRIED = 1.0 / 2.1  # rho0 = r0 / 2.1 (Kolmogorov; Andrews and Phillips 2005)


def transmittance_to_db(transmittance):
    """Loss in dB, -10 log10(T) (positive for T < 1)."""
    return -10.0 * jnp.log10(jnp.asarray(transmittance))


def beam_radius_m(range_km, divergence_urad, waist_m=0.0):
    """1/e^2 intensity radius of a Gaussian beam at ``range_km``: sqrt(w0^2 + (theta L)^2), m."""
    far = jnp.asarray(divergence_urad) * 1e-6 * jnp.asarray(range_km) * 1e3
    return jnp.sqrt(jnp.asarray(waist_m) ** 2 + far**2)


def collected_fraction(beam_radius_m_, aperture_m):
    """Fraction of a centred Gaussian beam of 1/e^2 radius w that a disc of diameter D collects:
    1 - exp(-2 (D/2)^2 / w^2)."""
    a = 0.5 * jnp.asarray(aperture_m)
    return -jnp.expm1(-2.0 * a**2 / jnp.asarray(beam_radius_m_) ** 2)


def diffraction_transmittance(range_km, divergence_urad, aperture_m, waist_m=0.0):
    """Diffraction (geometric) transmittance: the receiver aperture's share of the beam at
    ``range_km`` (term 1 of the module docstring)."""
    return collected_fraction(beam_radius_m(range_km, divergence_urad, waist_m), aperture_m)


def jittered_collected_fraction(range_km, divergence_urad, aperture_m, jitter_urad, waist_m=0.0):
    """Mean collected fraction with Gaussian pointing jitter, exact for any aperture: the mean
    intensity is a Gaussian of radius^2 w^2 + 4 (sigma L)^2 (convolution of two Gaussians)."""
    w = beam_radius_m(range_km, divergence_urad, waist_m)
    spread = 2.0 * jnp.asarray(jitter_urad) * 1e-6 * jnp.asarray(range_km) * 1e3
    return collected_fraction(jnp.sqrt(w**2 + spread**2), aperture_m)


def air_mass(elevation_deg, model: str = "kasten_young"):
    """Relative air mass at ``elevation_deg`` (term 2): ``"kasten_young"`` (Kasten and Young
    1989) or ``"plane_parallel"`` (1 / sin el)."""
    el = jnp.asarray(elevation_deg)
    if model == "plane_parallel":
        return 1.0 / jnp.sin(jnp.deg2rad(el))
    if model == "kasten_young":
        return 1.0 / (jnp.sin(jnp.deg2rad(el)) + 0.50572 * (el + 6.07995) ** -1.6364)
    raise ValueError(f"air mass model {model!r}: must be one of {', '.join(AIR_MASS_MODELS)}")


def extinction_transmittance(elevation_deg, zenith_transmittance, model: str = "kasten_young"):
    """Atmospheric transmittance T0^X(el) at ``elevation_deg`` (term 2)."""
    x = air_mass(elevation_deg, model)
    return jnp.exp(x * jnp.log(jnp.asarray(zenith_transmittance)))


def pointing_transmittance(divergence_urad, jitter_urad):
    """Mean transmittance factor of Gaussian pointing jitter (rms ``jitter_urad`` per axis) on a
    Gaussian beam of 1/e^2 half-angle ``divergence_urad``: theta^2 / (theta^2 + 4 sigma^2)
    (term 3; Farid and Hranilovic 2007)."""
    theta2 = jnp.asarray(divergence_urad) ** 2
    return theta2 / (theta2 + 4.0 * jnp.asarray(jitter_urad) ** 2)


def uplink_divergence_urad(divergence_urad, wavelength_nm, fried_parameter_m):
    """Long-term divergence of an uplink beam: sqrt(theta^2 + (lambda / (pi rho0))^2) with
    rho0 = r0 / 2.1 (term 5); ``fried_parameter_m`` = inf gives theta."""
    rho0_m = jnp.asarray(fried_parameter_m) * COHERENCE_RADIUS_PER_FRIED
    turbulent_urad = jnp.asarray(wavelength_nm) * 1e-9 / (jnp.pi * rho0_m) * 1e6
    return jnp.sqrt(jnp.asarray(divergence_urad) ** 2 + turbulent_urad**2)


def effective_divergence_urad(divergence_urad, direction: str = "downlink", wavelength_nm=850.0,
                              fried_parameter_m=math.inf):
    """The divergence the diffraction and pointing terms see: theta on a downlink, the
    turbulence-spread :func:`uplink_divergence_urad` on an uplink."""
    if direction == "downlink":
        return jnp.asarray(divergence_urad)
    if direction == "uplink":
        return uplink_divergence_urad(divergence_urad, wavelength_nm, fried_parameter_m)
    raise ValueError(f"direction {direction!r}: must be one of {', '.join(DIRECTIONS)}")


def fov_solid_angle_sr(fov_urad):
    """Solid angle of a cone of full angle ``fov_urad``: 2 pi (1 - cos(phi / 2)), sr."""
    half = 0.5 * jnp.asarray(fov_urad) * 1e-6
    return 4.0 * jnp.pi * jnp.sin(0.5 * half) ** 2  # = 2 pi (1 - cos half), without cancellation


def background_photons_per_gate(sky_radiance, fov_urad, aperture_m, filter_nm, gate_ns,
                                wavelength_nm):
    """Mean sky-background photons per gate at the receiver aperture:
    H Omega A dlambda tau / (h c / lambda), H in W/(m^2 sr nm); 0 when H = 0."""
    area_m2 = jnp.pi * (0.5 * jnp.asarray(aperture_m)) ** 2
    power_w = (jnp.asarray(sky_radiance) * fov_solid_angle_sr(fov_urad) * area_m2
               * jnp.asarray(filter_nm))
    photon_j = PLANCK_J_S * LIGHT_M_PER_S / (jnp.asarray(wavelength_nm) * 1e-9)
    return power_w * jnp.asarray(gate_ns) * 1e-9 / photon_j


@pytree_dataclass
class LinkBudget:
    """The mean loss terms of a link (each in dB, positive; arrays over a pass's slots)."""

    diffraction_db: object
    extinction_db: object
    pointing_db: object
    fixed_db: object

    def total_db(self):
        """The total mean channel loss in dB (the sum of the terms)."""
        return self.diffraction_db + self.extinction_db + self.pointing_db + self.fixed_db

    def transmittance(self):
        """The mean channel transmittance, 10^(-total / 10)."""
        return db_to_transmittance(self.total_db())


def link_budget(elevation_deg, range_km, *, divergence_urad, aperture_m, zenith_transmittance=1.0,
                jitter_urad=0.0, fixed_loss_db=0.0, direction: str = "downlink",
                wavelength_nm=850.0, fried_parameter_m=math.inf, waist_m=0.0,
                air_mass_model: str = "kasten_young") -> LinkBudget:
    """The mean loss terms at each (elevation, range) of a pass. ``direction`` and
    ``air_mass_model`` are static choices; everything else may be an array or a tracer."""
    theta = effective_divergence_urad(divergence_urad, direction, wavelength_nm, fried_parameter_m)
    diffraction = diffraction_transmittance(range_km, theta, aperture_m, waist_m)
    extinction = extinction_transmittance(elevation_deg, zenith_transmittance, air_mass_model)
    pointing = pointing_transmittance(theta, jitter_urad)
    shape = jnp.broadcast_shapes(jnp.shape(elevation_deg), jnp.shape(range_km))
    return LinkBudget(
        diffraction_db=jnp.broadcast_to(transmittance_to_db(diffraction), shape),
        extinction_db=jnp.broadcast_to(transmittance_to_db(extinction), shape),
        pointing_db=jnp.broadcast_to(transmittance_to_db(pointing), shape),
        fixed_db=jnp.broadcast_to(jnp.asarray(fixed_loss_db, dtype=float), shape),
    )
