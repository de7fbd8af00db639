"""The atmosphere above a ground station (config group ``atmosphere``).

One dataclass holds what the free-space link needs of the air: its extinction (the zenith
transmittance, scaled to each elevation by the air mass in :mod:`qmc.freespace.budget`) and its
turbulence (the fading law, and the Hufnagel-Valley profile's ground turbulence and rms wind
speed, read by :mod:`qmc.freespace.turbulence` and :mod:`qmc.freespace.fading`).
"""

from __future__ import annotations

from qmc._pytree import pytree_dataclass, static
from qmc.validation import Range, Rule

__all__ = ["Atmosphere", "TURBULENCE_LAWS"]

TURBULENCE_LAWS = ("none", "lognormal", "gamma_gamma", "beam_wander")


@pytree_dataclass
class Atmosphere:
    """The air between a ground station and a satellite.

    Args:
        zenith_transmittance: T0, the transmittance of the whole atmosphere straight up from the
            station at the link's wavelength (absorption and scattering; clouds excluded); at
            elevation el it is T0^X(el) with X the air mass. 0.8 is a clear-sky order of
            magnitude in the near infrared at a low site; set the site's value.
        station_altitude_m: h0, the station's altitude above sea level in m; the turbulence
            profile's heights count from it (0 by default). The extinction does not use it:
            ``zenith_transmittance`` is already the value at the station.
        turbulence: the fading law, static: ``none``, ``lognormal`` (weak turbulence),
            ``gamma_gamma`` (moderate to strong) or ``beam_wander``.
        ground_cn2: A, the Hufnagel-Valley ground-level C_n^2 in m^-2/3 (1.7e-14: HV 5/7).
        wind_speed_m_s: v, the Hufnagel-Valley rms wind speed in m/s (21: HV 5/7).
    """

    zenith_transmittance: float = 0.8
    station_altitude_m: float = 0.0
    turbulence: str = static("none")
    ground_cn2: float = 1.7e-14
    wind_speed_m_s: float = 21.0

    def checks(self):
        return [
            Range("zenith_transmittance", 0.0, 1.0, lo_open=True),
            Range("station_altitude_m", -500.0, 9_000.0),
            Rule("turbulence", lambda a, xp: xp.asarray(a.turbulence in TURBULENCE_LAWS),
                 f"must be one of {', '.join(TURBULENCE_LAWS)}"),
            Range("ground_cn2", 0.0, 1e-10),
            Range("wind_speed_m_s", 0.0, 200.0),
        ]
