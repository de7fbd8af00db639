"""The spontaneous Raman coefficient beta of a silica fiber, from the shipped gain spectrum.

beta(lambda_c, lambda_q) is the power scattered into the fiber's guided mode at the quantum
wavelength lambda_q, per km of fiber, per nm of filter bandwidth and per watt of classical light at
lambda_c (units 1/(km nm)): the quantity written beta by Eraerds et al., NJP 12, 063027 (2010)
(rho in Chapuran et al., NJP 11, 105001 (2009)). It is built from three pieces:

* the *shape* of the Raman gain spectrum of fused silica, g(dnu) (peak 1 near 13.2 THz), from the
  13-mode fit of Hollenbeck and Cantrell, JOSA B 19, 2886 (2002), Table 1, shipped as
  ``data/raman_hollenbeck_cantrell_2002.csv``: g(Omega) = Im FT[h_R](Omega);
* its *absolute scale*, the polarization-averaged peak Raman gain efficiency g_R / A_eff of
  standard single-mode fiber (:data:`PEAK_GAIN_PER_W_KM` at the pump frequency
  :data:`REFERENCE_PUMP_THZ`), scaled in proportion to the pump frequency (g_R ~ 1 / lambda_p,
  Agrawal, Nonlinear Fiber Optics, Sec. 8.1.1);
* the thermal occupation of the phonons, n_th = 1 / (exp(h dnu / k T) - 1): the Stokes side
  (lambda_q > lambda_c) scatters with n_th + 1, the anti-Stokes side with n_th, so the two sides
  differ by the Boltzmann factor exp(-h dnu / k T) at equal detuning (spontaneous emission seeded
  by one photon per mode: Smith, Appl. Opt. 11, 2489 (1972); Agrawal, Sec. 8.1).

Spontaneous Raman scattering fills both polarization modes and both directions of the fiber
equally; a depolarized pump gives each polarization mode the averaged gain gamma = g_R / (2 A_eff)
(Stolen, IEEE JQE 15, 1157 (1979)), so the power per unit bandwidth and length in one direction is

    dP / (dz dnu) = 2 gamma(dnu) P_c h nu_q (n_th + 1)      (n_th for anti-Stokes),

and beta = dP / (dz dlambda P_c) with dnu = (nu_q^2 / c) dlambda. A measured beta overrides all this
(``ClassicalChannel.raman_coefficient``).
"""

from __future__ import annotations

import csv
import functools
import math
from importlib import resources

import jax.numpy as jnp
import numpy as np

__all__ = [
    "PLANCK_J_S", "BOLTZMANN_J_PER_K", "LIGHT_M_PER_S", "DEFAULT_TEMPERATURE_K", "PEAK_GAIN_PER_W_KM",
    "REFERENCE_PUMP_THZ", "MAX_DETUNING_THZ", "WAVELENGTH_RANGE_NM", "DATA_FILE", "load_modes",
    "gain_table", "gain_shape", "frequency_thz", "detuning_thz", "raman_coefficient_per_km_nm",
    "spectrum_problem",
]

PLANCK_J_S = 6.62607015e-34
BOLTZMANN_J_PER_K = 1.380649e-23
LIGHT_M_PER_S = 299_792_458.0

DEFAULT_TEMPERATURE_K = 300.0  # room temperature; buried cable is nearer 285-290 K

# Absolute scale: the peak of the standard single-mode fiber (SSMF) Raman gain efficiency profile
# g_R / A_eff shipped by GNPy (Telecom Infra Project), gnpy/core/parameters.py,
# DEFAULT_RAMAN_COEFFICIENT: 4.19511263e-4 1/(W m) at 12.75 THz offset for a pump at
# 206.184634112792 THz (1454 nm). Cross-check: Agrawal's g_R ~ 1e-13 m/W at a 1 um pump, scaled
# to 1454 nm (6.9e-14 m/W), over A_eff = 85 um^2 (SMF-28, mode field diameter 10.4 um) and halved
# for a depolarized pump gives 0.40 1/(W km).
PEAK_GAIN_PER_W_KM = 0.419511263
REFERENCE_PUMP_THZ = 206.184634112792

# The fit's last mode is at 1215 cm^-1 (36.4 THz) with a 160 cm^-1 Gaussian width: beyond about
# 1400 cm^-1 it describes nothing measured, so larger detunings are refused.
MAX_DETUNING_THZ = 42.0
# ITU-T O- to U-band; below 1260 nm (the cable cutoff of SMF-28) the fiber is not single-mode.
WAVELENGTH_RANGE_NM = (1260.0, 1675.0)

DATA_FILE = "raman_hollenbeck_cantrell_2002.csv"
_GRID_STEP_THZ = 0.05  # resolves the narrowest mode (Lorentzian FWHM 8.17 cm^-1 = 0.245 THz)
_C_CM_PER_S = LIGHT_M_PER_S * 100.0


@functools.cache
def load_modes() -> dict[str, np.ndarray]:
    """The 13 modes of Hollenbeck and Cantrell, JOSA B 19, 2886 (2002), Table 1, as shipped.

    Returns:
        dict of float64 arrays, shape (13,): ``position_cm1``, ``amplitude``,
        ``gaussian_fwhm_cm1``, ``lorentzian_fwhm_cm1``.
    """
    text = resources.files("qmc.channels").joinpath("data", DATA_FILE).read_text()
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    return {key: np.array([float(r[key]) for r in rows]) for key in rows[0]}


@functools.cache
def gain_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gain shape on a grid of detunings, from the shipped modes (numpy, computed once).

    Model: h(t) = sum_i A_i exp(-gamma_i t - Gamma_i^2 t^2 / 4) sin(omega_i t) (Hollenbeck and
    Cantrell 2002, with their Table 1) and g(Omega) = Im int_0^inf h(t) e^{i Omega t} dt,
    integrated by the trapezoid rule (0.5 fs steps over 4 ps, where every mode has decayed),
    normalized to a peak of 1. ``g / dnu`` is tabulated too, because its limit at dnu = 0 is
    finite (g is odd in dnu) and it is what multiplies the diverging occupation n_th ~ kT / (h dnu).

    Returns:
        (detuning_thz, g, g_over_detuning_per_thz), each of shape (841,), detuning 0 to 42 THz.
    """
    modes = load_modes()
    omega = 2.0 * math.pi * _C_CM_PER_S * modes["position_cm1"]
    gauss = math.pi * _C_CM_PER_S * modes["gaussian_fwhm_cm1"]
    lorentz = math.pi * _C_CM_PER_S * modes["lorentzian_fwhm_cm1"]
    t = np.linspace(0.0, 4e-12, 8001)  # 0.5 fs: within 2e-9 of a 0.125 fs grid
    h = (modes["amplitude"][:, None] * np.exp(-lorentz[:, None] * t - (gauss[:, None] * t) ** 2 / 4.0)
         * np.sin(omega[:, None] * t)).sum(axis=0)
    detuning = np.linspace(0.0, MAX_DETUNING_THZ, round(MAX_DETUNING_THZ / _GRID_STEP_THZ) + 1)
    big_omega = 2.0 * math.pi * detuning * 1e12
    # sin(Omega t) / Omega = t sinc(Omega t / pi): exact at Omega = 0
    over = np.trapezoid(h * t * np.sinc(big_omega[:, None] * t / math.pi), t, axis=1)
    g = big_omega * over
    scale = g.max()
    return detuning, g / scale, over * 2.0 * math.pi * 1e12 / scale


def gain_shape(detuning_thz):
    """Normalized Raman gain shape g(|dnu|) of fused silica (peak 1 at about 13.2 THz).

    Hollenbeck and Cantrell, JOSA B 19, 2886 (2002); linear interpolation in :func:`gain_table`,
    0 beyond :data:`MAX_DETUNING_THZ`.
    """
    grid, g, _ = gain_table()
    return jnp.interp(jnp.abs(detuning_thz), grid, g, right=0.0)


def frequency_thz(wavelength_nm):
    """Optical frequency nu = c / lambda in THz."""
    return LIGHT_M_PER_S / (jnp.asarray(wavelength_nm) * 1e-9) * 1e-12


def detuning_thz(classical_wavelength_nm, quantum_wavelength_nm):
    """dnu = nu_c - nu_q in THz: positive on the Stokes side (quantum wavelength longer)."""
    return frequency_thz(classical_wavelength_nm) - frequency_thz(quantum_wavelength_nm)


def _one_minus_exp_over(x):
    """(1 - e^-x) / x, 1 at x = 0, with finite gradients there (series below |x| = 1e-3)."""
    small = jnp.abs(x) < 1e-3
    safe = jnp.where(small, 1.0, x)
    series = 1.0 - x / 2.0 + x**2 / 6.0 - x**3 / 24.0 + x**4 / 120.0  # error < x^5 / 720
    return jnp.where(small, series, -jnp.expm1(-safe) / safe)


def raman_coefficient_per_km_nm(classical_wavelength_nm, quantum_wavelength_nm,
                                temperature_k=DEFAULT_TEMPERATURE_K):
    """Spontaneous Raman coefficient beta in 1/(km nm), both polarizations, one direction.

    beta = 2 gamma(dnu) h nu_q (n_th + 1 or n_th) nu_q^2 / c, with gamma(dnu) = PEAK_GAIN_PER_W_KM
    (nu_c / REFERENCE_PUMP_THZ) g(|dnu|), g from Hollenbeck and Cantrell (2002), n_th + 1 on the
    Stokes side (dnu > 0) and n_th on the anti-Stokes side (see the module docstring). The product
    g (n_th + 1) is evaluated as (g / dnu) (k T / h) / f(x), f(x) = (1 - e^-x) / x, x = h|dnu|/kT,
    so it is finite and differentiable at dnu = 0. Pure jnp: broadcasts and vmaps over its
    arguments; detunings beyond MAX_DETUNING_THZ give 0 (:func:`spectrum_problem` refuses them).

    Args:
        classical_wavelength_nm: wavelength of the classical (pump) light, nm.
        quantum_wavelength_nm: wavelength of the quantum channel, nm.
        temperature_k: fiber temperature, K.

    Returns:
        beta in 1/(km nm), the broadcast shape of the arguments.
    """
    nu_q_thz = frequency_thz(quantum_wavelength_nm)
    dnu = frequency_thz(classical_wavelength_nm) - nu_q_thz
    grid, _, over = gain_table()
    g_over_dnu = jnp.interp(jnp.abs(dnu), grid, over, right=0.0)  # 1/THz
    kt_over_h_thz = BOLTZMANN_J_PER_K * jnp.asarray(temperature_k) / PLANCK_J_S * 1e-12
    x = jnp.abs(dnu) / kt_over_h_thz
    stokes_occupied = g_over_dnu * kt_over_h_thz / _one_minus_exp_over(x)  # g (n_th + 1)
    occupied = jnp.where(dnu >= 0.0, stokes_occupied, stokes_occupied * jnp.exp(-x))  # n_th = (n_th + 1) e^-x
    gamma_per_w_km = PEAK_GAIN_PER_W_KM * (nu_q_thz + dnu) / REFERENCE_PUMP_THZ
    nu_q_hz = nu_q_thz * 1e12
    per_hz = 2.0 * gamma_per_w_km * PLANCK_J_S * nu_q_hz * occupied  # W / (W km Hz)
    return per_hz * nu_q_hz**2 / LIGHT_M_PER_S * 1e-9  # dnu / dlambda = nu^2 / c, per nm


def spectrum_problem(classical_wavelength_nm: float, quantum_wavelength_nm: float,
                     classical_name: str = "classical.wavelength_nm",
                     quantum_name: str = "source.wavelength_nm") -> str | None:
    """One-line reason why the shipped spectrum cannot give beta for these wavelengths, or None.

    Concrete values only (the API and CLI boundary); the names are the keys the messages show.
    """
    lo, hi = WAVELENGTH_RANGE_NM
    for name, value in ((classical_name, classical_wavelength_nm), (quantum_name, quantum_wavelength_nm)):
        if not lo <= float(value) <= hi:
            return f"{name} = {float(value):g} is out of range: must be in [{lo:g}, {hi:g}]"
    dnu = float(detuning_thz(classical_wavelength_nm, quantum_wavelength_nm))
    if abs(dnu) > MAX_DETUNING_THZ:
        return (f"{classical_name} = {float(classical_wavelength_nm):g} and {quantum_name} = "
                f"{float(quantum_wavelength_nm):g} are {abs(dnu):.1f} THz apart: outside the Raman "
                f"spectrum (|detuning| <= {MAX_DETUNING_THZ:g} THz); give the Raman coefficient instead")
    return None
