"""Published systems as ready-made Python objects (the same values as the configs in conf/system/).

* Gobby, Yuan, Shields, APL 84, 3762 (2004), as used by Lo, Ma, Chen (2005): :func:`gys_link`,
  :func:`decoy_protocol`.
* Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307 (2014), Sec. IV: :data:`LIM2014`,
  :func:`lim2014_link`, :func:`lim2014_analysis`.
"""

from __future__ import annotations

from qmc.analysis.finite import FINITE
from qmc.channels import Fiber
from qmc.detectors import ThresholdDetectors, gys2004
from qmc.link import Link
from qmc.protocols import DecoyBB84
from qmc.sources import WeakCoherentSource

__all__ = ["LIM2014", "lim2014_link", "lim2014_analysis", "gys_link", "decoy_protocol"]

# Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307 (2014), Sec. IV.
LIM2014 = dict(
    loss_db_per_km=0.2, efficiency=0.1, p_dark=6e-7, p_afterpulse=4e-2, misalignment=5e-3,
    mu3=2e-4, f_ec=1.16, kappa=1e-15, eps_cor=1e-15,
)


def lim2014_link(length_km: float = 0.0) -> Link:
    """The fiber system of Lim et al. (2014), Sec. IV, without its afterpulsing (which Lim's
    closed-form model adds: :class:`qmc.engines.lim2014.Lim2014Model`)."""
    return Link(
        WeakCoherentSource(),
        Fiber(length_km=length_km, loss_db_per_km=LIM2014["loss_db_per_km"]),
        ThresholdDetectors(LIM2014["efficiency"], LIM2014["p_dark"], LIM2014["misalignment"]),
    )


def lim2014_analysis(name: str = "finite_lim2014", block_size: float = 1e9, **kwargs):
    """An analysis of :data:`qmc.analysis.FINITE` with Lim's security settings (f_EC = 1.16,
    eps_cor = 1e-15, eps_sec = 1e-15 l); ``kwargs`` override them."""
    cls = FINITE[name]
    if not cls.finite:
        return cls(f_ec=kwargs.get("f_ec", LIM2014["f_ec"]))
    settings = dict(f_ec=LIM2014["f_ec"], eps_cor=LIM2014["eps_cor"], kappa=LIM2014["kappa"])
    settings.update(kwargs)
    return cls(block_size=block_size, **settings)


def gys_link(length_km: float = 0.0, click_model: str = "threshold") -> Link:
    """The link of Gobby, Yuan, Shields (2004) as used by Lo, Ma, Chen (2005): 0.21 dB/km fiber,
    eta_Bob = 4.5 %, Y0 = 1.7e-6, e_d = 3.3 %, with physical threshold detectors by default (the
    physical pulse path needs them; ``click_model="ma2005"`` is Ma et al.'s linear model)."""
    return Link(channel=Fiber(length_km=length_km, loss_db_per_km=0.21), detector=gys2004(click_model))


def decoy_protocol() -> DecoyBB84:
    """Fixed intensities (signal 0.48, weak decoy 0.1, vacuum) with probabilities (0.8, 0.1, 0.1),
    symmetric bases (p_z = 1/2) and key from both bases."""
    return DecoyBB84(intensities=(0.48, 0.1, 0.0), probabilities=(0.8, 0.1, 0.1), p_z=0.5, key_basis="both")
