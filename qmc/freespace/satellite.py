"""The satellite and its pass (config group ``satellite``), and a pass's mean link budget.

:class:`Satellite` holds the orbit and pass sampling (a circular orbit:
:mod:`qmc.freespace.geometry`), the transmitter's beam and fixed losses, the window of the pass
kept, and optionally a table that replaces geometry and budget (:mod:`qmc.freespace.pass_table`).
:func:`satellite_pass` builds the pass it describes; :func:`pass_loss_db` the mean channel loss of
each slot, from the table or from :func:`qmc.freespace.budget.link_budget`.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass, static
from qmc.freespace.atmosphere import Atmosphere
from qmc.freespace.budget import DIRECTIONS, LinkBudget, link_budget
from qmc.freespace.geometry import Pass, circular_pass
from qmc.freespace.pass_table import load_pass_table
from qmc.freespace.receiver import Pointing, Receiver
from qmc.validation import Range, Rule

__all__ = ["Satellite", "satellite_pass", "pass_link_budget", "pass_loss_db"]


@pytree_dataclass
class Satellite:
    """A satellite in a circular orbit passing over the ground station.

    Args:
        altitude_km: h, the orbit's altitude above the (spherical) Earth, km.
        culmination_deg: the pass's highest elevation, deg.
        min_elevation_deg: slots below this elevation are not used, deg.
        time_step_s: the slots' length for a computed pass, s.
        divergence_urad: theta, the 1/e^2 half-angle divergence of the transmitted Gaussian beam,
            urad.
        fixed_loss_db: the optical, coupling and receiver losses of both terminals, dB.
        window_s: keep only the slots within this many seconds of culmination; None (null) keeps
            the whole pass above ``min_elevation_deg``.
        loss_table: path of a CSV pass table (``time_s``, ``elevation_deg``, ``loss_db``) that
            replaces the geometry and the budget; None computes them. Static.
        direction: ``downlink`` (satellite to ground, the default) or ``uplink``. Static.
    """

    altitude_km: float = 500.0
    culmination_deg: float = 90.0
    min_elevation_deg: float = 10.0
    time_step_s: float = 1.0
    divergence_urad: float = 10.0
    fixed_loss_db: float = 0.0
    window_s: float | None = None
    loss_table: str | None = static(None)
    direction: str = static("downlink")

    def checks(self):
        return [
            Range("altitude_km", 100.0, 40_000.0),
            Range("culmination_deg", 0.0, 90.0, lo_open=True),
            Range("min_elevation_deg", 0.0, 90.0, hi_open=True),
            Rule("culmination_deg,min_elevation_deg",
                 lambda s, xp: xp.asarray(s.culmination_deg) >= xp.asarray(s.min_elevation_deg),
                 "the culmination must be at least the minimum elevation"),
            Range("time_step_s", 0.0, 3600.0, lo_open=True),
            Range("divergence_urad", 0.0, 1e4, lo_open=True),
            Range("fixed_loss_db", 0.0, 200.0),
            Rule("window_s", lambda s, xp: xp.asarray(True) if s.window_s is None
                 else xp.all(xp.asarray(s.window_s) >= 0.0), "must be >= 0 or null"),
            Rule("direction", lambda s, xp: xp.asarray(s.direction in DIRECTIONS),
                 f"must be one of {', '.join(DIRECTIONS)}"),
            Rule("loss_table", lambda s, xp: xp.asarray(
                s.loss_table is None or (isinstance(s.loss_table, str) and bool(s.loss_table))),
                "must be the path of a CSV file or null"),
        ]


def satellite_pass(satellite: Satellite) -> Pass:
    """The pass ``satellite`` describes (concrete values): its table if it has one (then the
    minimum elevation still applies), else the circular-orbit pass; cut to ``window_s``."""
    if satellite.loss_table is not None:
        table = load_pass_table(satellite.loss_table)
        the_pass = table.select(table.elevation_deg >= float(satellite.min_elevation_deg))
    else:
        the_pass = circular_pass(satellite.altitude_km, satellite.culmination_deg,
                                 satellite.min_elevation_deg, satellite.time_step_s)
    window = None if satellite.window_s is None else float(satellite.window_s)
    return the_pass.within(window)


def pass_link_budget(the_pass: Pass, satellite: Satellite, receiver: Receiver,
                     pointing: Pointing, atmosphere: Atmosphere, wavelength_nm=850.0,
                     fried_parameter_m=math.inf) -> LinkBudget:
    """The mean loss terms of each slot of a computed pass (``range_km`` needed).
    ``fried_parameter_m`` (scalar or per slot) only matters on an uplink."""
    return link_budget(
        the_pass.elevation_deg, the_pass.range_km, divergence_urad=satellite.divergence_urad,
        aperture_m=receiver.aperture_m, zenith_transmittance=atmosphere.zenith_transmittance,
        jitter_urad=pointing.jitter_urad, fixed_loss_db=satellite.fixed_loss_db,
        direction=satellite.direction, wavelength_nm=wavelength_nm,
        fried_parameter_m=fried_parameter_m)


def pass_loss_db(the_pass: Pass, satellite: Satellite, receiver: Receiver, pointing: Pointing,
                 atmosphere: Atmosphere, wavelength_nm=850.0, fried_parameter_m=math.inf):
    """The mean total channel loss (dB) of each slot: the table's ``loss_db`` when the pass has
    one, else the link budget's total."""
    if the_pass.loss_db is not None:
        return jnp.asarray(the_pass.loss_db)
    return pass_link_budget(the_pass, satellite, receiver, pointing, atmosphere, wavelength_nm,
                            fried_parameter_m).total_db()
