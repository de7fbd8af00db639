"""Free-space and satellite links: pass geometry, link budget, the atmosphere.

:mod:`~qmc.freespace.geometry` (circular-orbit passes), :mod:`~qmc.freespace.tle` (passes from a
two-line element set, optional ``sgp4``), :mod:`~qmc.freespace.pass_table` (passes given as a
CSV of losses), :mod:`~qmc.freespace.budget` (diffraction, extinction, pointing, background),
:mod:`~qmc.freespace.turbulence` (the Hufnagel-Valley profile: Fried parameter, isoplanatic
angle, Rytov variance, scintillation index), :mod:`~qmc.freespace.fading` (log-normal,
Gamma-Gamma and beam-wander fading: samplers, densities, quadratures), and the config-facing
dataclasses :class:`Satellite`, :class:`Receiver`, :class:`Pointing`,
:class:`Atmosphere`.
"""

from qmc.freespace.atmosphere import TURBULENCE_LAWS, Atmosphere
from qmc.freespace.budget import LinkBudget, link_budget
from qmc.freespace.fading import Fading
from qmc.freespace.geometry import Pass, circular_pass, slant_range_km
from qmc.freespace.pass_table import load_pass_table
from qmc.freespace.receiver import Pointing, Receiver
from qmc.freespace.satellite import Satellite, pass_link_budget, pass_loss_db, satellite_pass

__all__ = [
    "Atmosphere", "TURBULENCE_LAWS", "LinkBudget", "link_budget", "Pass", "circular_pass",
    "slant_range_km", "load_pass_table", "Pointing", "Receiver", "Satellite", "pass_link_budget",
    "pass_loss_db", "satellite_pass", "Fading",
]
