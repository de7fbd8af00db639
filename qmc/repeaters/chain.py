"""A repeater chain and its memories as parameters: elementary links, swapping, memory decay.

:class:`Chain` (config group ``chain``) is ``n_links`` elementary links of equal length over
``length_km`` of fiber, each with a heralding station at its midpoint; :class:`Memory` (config
group ``memory``) the quantum memories at the nodes. Both are frozen PyTree dataclasses: numbers
are leaves (sweepable under ``jit(vmap)``), ``n_links`` and ``policy`` are static. A field given
as ``None`` (``null`` in a config) means "computed" (``p_link``, ``link_fidelity``) or "none"
(``t_depolarizing_s``, ``t_dephasing_s``, ``cutoff_s``).

Elementary link (two-photon, Barrett-Kok heralding: Barrett and Kok, PRA 71, 060310(R) (2005);
reviewed in Sangouard, Simon, de Riedmatten, Gisin, RMP 83, 33 (2011), Sec. IV.B): each node
emits a photon entangled with its memory towards the midpoint station; a linear-optics Bell
measurement there heralds the pair when both photons arrive and are detected, with probability

    p_true = (1/2) eta^2,   eta = coupling_efficiency * detector_efficiency * 10^(-a L_link / 20)

(each photon crosses L_link / 2 of fiber of a dB/km; the 1/2 is the Bell measurement's). A false
herald, to first order in the dark-click probability ``p_dark`` of one detector in one
detection window, is one photon detected and one dark click in the other window: p_false =
2 eta p_dark; it leaves the memories maximally mixed. The heralded pair is a Werner state of
fidelity ``(p_true herald_fidelity + p_false / 4) / (p_true + p_false)`` and ``p_link = p_true +
p_false``. An attempt takes the round trip of the link, ``2 L_link / c`` with c = 2e5 km/s in
fiber (emission, heralding, and the herald's answer at both nodes, counted conservatively).

Memories per node (``memories_per_node`` m, per side of an elementary link): without
purification the link attempts with its m memory pairs in parallel and keeps the first pair
heralded, so one round succeeds with 1 - (1 - p)^m. With ``purification`` (``bbpssw`` or
``dejmps``, :mod:`qmc.repeaters.purification`; m = 2) the link makes its pair by the process of
:mod:`qmc.repeaters.montecarlo` (two raw pairs purified into one, then ``purification_rounds`` - 1
more fresh pairs pumped into it).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from qmc._pytree import as_count, pytree_dataclass, static
from qmc.validation import Check, Range

__all__ = ["Chain", "Memory", "POLICIES", "PURIFICATIONS", "C_FIBER_KM_PER_S", "nested_levels"]

C_FIBER_KM_PER_S = 2.0e5  # light in fiber (group index about 1.5)
POLICIES = ("asap", "nested")  # swap as soon as both sides are ready; nested doubling
PURIFICATIONS = (None, "bbpssw", "dejmps")  # None: the heralded pair is used as it is


def _optional(field: str, lo: float, hi: float = math.inf, lo_open: bool = False) -> Check:
    """``field`` is None or a number in the range (a Range that accepts null)."""
    check = Range(field, lo, hi, lo_open=lo_open)

    def problem(obj, prefix):
        if getattr(obj, field) is None:
            return None
        return check.error(obj, prefix)

    return Check(problem)


def nested_levels(n_links: int) -> int:
    """Levels of nested doubling for ``n_links`` (a power of 2): log2(n_links)."""
    return int(n_links).bit_length() - 1


@pytree_dataclass
class Chain:
    """``n_links`` elementary links over ``length_km`` joined by entanglement swapping.

    Args:
        n_links: elementary links (static); 1 is the direct heralded link (no memory waits).
        length_km: total distance between the end nodes.
        p_link: success probability of one attempt of an elementary link; None: computed from the
            link (module docstring).
        link_fidelity: Werner fidelity of a heralded pair; None: computed from the link.
        swap_probability: success probability of a Bell measurement at a node (1/2 for linear
            optics, 1 for a deterministic gate).
        loss_db_per_km: fiber attenuation (0.2 dB/km at 1550 nm).
        coupling_efficiency: probability that a memory's photon is emitted and coupled into the fiber.
        detector_efficiency: the heralding station's detectors.
        p_dark: dark-click probability of one detector in one detection window.
        herald_fidelity: Werner fidelity of a heralded pair without dark clicks.
        policy: ``asap`` (swap at a node as soon as both its links hold pairs) or ``nested``
            (doubling: level-l nodes swap once both segments of 2^(l-1) links are complete;
            ``n_links`` a power of 2), static.
        memories_per_node: memories at each node for each of its links (static): without
            purification they attempt in parallel (a round succeeds with 1 - (1 - p)^m); with
            purification it must be 2.
        purification: ``None`` (none), ``bbpssw`` or ``dejmps`` (static): each elementary link
            purifies two heralded pairs into the one it hands to the chain.
        purification_rounds: with purification, the purifications per elementary pair (static):
            1 purifies two raw pairs; k > 1 then pumps k - 1 fresh pairs, one after another, into
            the kept pair (entanglement pumping with two memories per side).
    """

    n_links: int = static(2)
    length_km: float = 100.0
    p_link: float | None = None
    link_fidelity: float | None = None
    swap_probability: float = 1.0
    loss_db_per_km: float = 0.2
    coupling_efficiency: float = 0.9
    detector_efficiency: float = 0.9
    p_dark: float = 1e-7
    herald_fidelity: float = 1.0
    policy: str = static("asap")
    memories_per_node: int = static(1)
    purification: str | None = static(None)
    purification_rounds: int = static(1)

    def __post_init__(self):
        for name in ("n_links", "memories_per_node", "purification_rounds"):
            object.__setattr__(self, name, as_count(getattr(self, name)))

    def link_length_km(self):
        return self.length_km / self.n_links

    def attempt_time_s(self):
        """One attempt round: the round trip of an elementary link, 2 L_link / c."""
        return 2.0 * self.link_length_km() / C_FIBER_KM_PER_S

    def photon_efficiency(self):
        """eta: one photon from its memory through L_link / 2 of fiber and a detector."""
        fiber = 10.0 ** (-self.loss_db_per_km * self.link_length_km() / 20.0)
        return self.coupling_efficiency * self.detector_efficiency * fiber

    def _heralds(self):
        eta = self.photon_efficiency()
        return 0.5 * eta**2, 2.0 * eta * self.p_dark

    def success_probability(self):
        """p per attempt: ``p_link`` when given, else p_true + p_false (Barrett-Kok)."""
        if self.p_link is not None:
            return jnp.asarray(self.p_link)
        p_true, p_false = self._heralds()
        return jnp.minimum(p_true + p_false, 1.0)

    def fidelity(self):
        """Werner fidelity of a heralded pair: ``link_fidelity`` when given, else computed."""
        if self.link_fidelity is not None:
            return jnp.asarray(self.link_fidelity)
        p_true, p_false = self._heralds()
        return (p_true * self.herald_fidelity + 0.25 * p_false) / (p_true + p_false)

    def checks(self):
        def n_links(obj, prefix):
            n = obj.n_links
            if not isinstance(n, int) or n < 1:
                return f"{prefix}n_links = {n!r} is out of range: must be a whole number >= 1"
            if obj.policy == "nested" and n & (n - 1):
                return f"{prefix}n_links = {n}: nested doubling needs a power of 2 (or {prefix}policy=asap)"
            return None

        def policy(obj, prefix):
            if obj.policy not in POLICIES:
                return f"{prefix}policy = {obj.policy!r}: must be one of {', '.join(POLICIES)}"
            return None

        def memories(obj, prefix):
            m = obj.memories_per_node
            if isinstance(m, bool) or not isinstance(m, int) or m < 1:
                return f"{prefix}memories_per_node = {m!r} is out of range: must be a whole number >= 1"
            return None

        def purification(obj, prefix):
            kind = obj.purification
            if kind not in PURIFICATIONS:
                return (f"{prefix}purification = {kind!r}: must be one of "
                        f"{', '.join('null' if k is None else k for k in PURIFICATIONS)}")
            k = obj.purification_rounds
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                return f"{prefix}purification_rounds = {k!r} is out of range: must be a whole number >= 1"
            if kind is not None and obj.memories_per_node != 2:
                return (f"{prefix}purification = {kind}: needs {prefix}memories_per_node = 2 "
                        f"(got {obj.memories_per_node!r}), or {prefix}purification=null")
            return None

        return [
            Check(policy), Check(n_links), Check(memories), Check(purification),
            Range("length_km", 0.0),
            _optional("p_link", 0.0, 1.0, lo_open=True),
            _optional("link_fidelity", 0.25, 1.0),
            Range("swap_probability", 0.0, 1.0, lo_open=True),
            Range("loss_db_per_km", 0.0),
            Range("coupling_efficiency", 0.0, 1.0),
            Range("detector_efficiency", 0.0, 1.0),
            Range("p_dark", 0.0, 1.0),
            Range("herald_fidelity", 0.25, 1.0),
        ]


@pytree_dataclass
class Memory:
    """The quantum memories at every node (``chain.memories_per_node`` per side of an elementary link).

    Decay of a stored qubit over a time t (both are Pauli channels, so they commute with each
    other and with swapping):
      depolarizing: with probability 1 - exp(-t / t_depolarizing_s) the qubit is replaced by the
        maximally mixed state, so a stored Werner pair (both halves waiting t) has its Werner
        parameter multiplied by exp(-2 t / t_depolarizing_s), one factor per qubit;
      dephasing: a Z error with probability (1 - exp(-t / t_dephasing_s)) / 2, which multiplies
        the pair's X and Y correlations by exp(-t / t_dephasing_s) and leaves Z alone.

    Args:
        t_depolarizing_s: depolarizing time of one memory; None: none.
        t_dephasing_s: dephasing time (T2) of one memory; None: none.
        efficiency: probability that a stored qubit is read out; a swap reads two, so it succeeds
            with ``swap_probability * efficiency**2`` (the end nodes measure their qubits as the
            end-to-end pair is declared and are counted as read).
        cutoff_s: a stored segment whose oldest elementary pair was heralded more than this long
            ago is discarded and its links regenerate; None: no cutoff.
    """

    t_depolarizing_s: float | None = None
    t_dephasing_s: float | None = None
    efficiency: float = 1.0
    cutoff_s: float | None = None

    def checks(self):
        return [
            _optional("t_depolarizing_s", 0.0, lo_open=True),
            _optional("t_dephasing_s", 0.0, lo_open=True),
            Range("efficiency", 0.0, 1.0, lo_open=True),
            _optional("cutoff_s", 0.0),
        ]

    def decay(self, qubit_seconds):
        """Factors (depolarizing, dephasing) on the correlations after ``qubit_seconds`` of storage
        summed over qubits: exp(-s / t_dep) on all three, times exp(-s / t_deph) on X and Y."""
        s = jnp.asarray(qubit_seconds)
        dep = jnp.ones_like(s) if self.t_depolarizing_s is None else jnp.exp(-s / self.t_depolarizing_s)
        deph = jnp.ones_like(s) if self.t_dephasing_s is None else jnp.exp(-s / self.t_dephasing_s)
        return dep, deph
