"""Entanglement purification of two Bell-diagonal pairs into one: BBPSSW and DEJMPS.

Both protocols apply a bilateral CNOT (pair 1 the source, pair 2 the target), measure the target
pair's two qubits in the Z basis and keep the source pair when the outcomes agree. In the Pauli
frame of |Phi+> (:mod:`qmc.repeaters.states`: an X error on the second qubit makes Psi+, a Z
error Phi-, a Y error Psi-), the bilateral CNOT copies the source's X error onto the target and
the target's Z error onto the source; the outcomes agree when the target ends without X error.

**DEJMPS** (Deutsch, Ekert, Jozsa, Macchiavello, Popescu, Sanpera, PRL 77, 2818 (1996), Eqs. (6)
to (10)): both nodes first rotate their qubits (Alice R_x(pi/2), Bob R_x(-pi/2)), which exchanges
Psi- and Phi-; with the paper's coefficients A = Phi+, B = Psi-, C = Psi+, D = Phi- of two pairs,

    N  = (A1 + B1)(A2 + B2) + (C1 + D1)(C2 + D2)
    A' = (A1 A2 + B1 B2) / N      B' = (C1 D2 + D1 C2) / N
    C' = (C1 C2 + D1 D2) / N      D' = (A1 B2 + B1 A2) / N

which for two equal pairs is the published N = (A + B)^2 + (C + D)^2, A' = (A^2 + B^2) / N,
B' = 2 C D / N, C' = (C^2 + D^2) / N, D' = 2 A B / N. The Bell-diagonal form is kept exactly.

**BBPSSW** (Bennett, Brassard, Popescu, Schumacher, Smolin, Wootters, PRL 76, 722 (1996)): each
pair is twirled to the Werner state of its fidelity, the bilateral CNOT applied, and the kept
pair twirled back to Werner form; for fidelities F1, F2 (Eq. (5) of the paper for F1 = F2 = F)

    N  = F1 F2 + F1 (1 - F2) / 3 + (1 - F1) F2 / 3 + 5 (1 - F1)(1 - F2) / 9
    F' = (F1 F2 + (1 - F1)(1 - F2) / 9) / N

so for equal pairs N = F^2 + 2 F (1 - F) / 3 + 5 ((1 - F) / 3)^2 and F' = (F^2 + ((1 - F) / 3)^2) / N,
with fixed points F = 1/2 and F = 1 and F' > F for 1/2 < F < 1.

Everything here is plain ``jnp`` on arrays of any leading shape (traceable under jit and vmap).

In a chain (``chain.purification``, ``chain.memories_per_node=2``; the process is in
:mod:`qmc.repeaters.montecarlo`) each elementary link purifies two heralded pairs into the one it
hands on: the link's pairs are purer, and they take E[max(G1, G2)] / N rounds instead of 1/p
((3 - 2p) / (2 - p) / N, about 1.5 / N times as long for small p), while the first pair decays
in its memory until the second arrives (docs/repeaters.md: what it does to a chain's rate and
fidelity).
"""

from __future__ import annotations

import jax.numpy as jnp

from qmc.repeaters import states

__all__ = ["METHODS", "bbpssw", "bbpssw_pair", "dejmps", "dejmps_pair", "purify"]

METHODS = ("bbpssw", "dejmps")


def bbpssw_pair(f1, f2):
    """(F', N): BBPSSW on two Werner pairs of fidelities ``f1`` (source) and ``f2`` (target)."""
    f1, f2 = jnp.asarray(f1), jnp.asarray(f2)
    e1, e2 = (1.0 - f1) / 3.0, (1.0 - f2) / 3.0
    n = f1 * f2 + f1 * e2 + e1 * f2 + 5.0 * e1 * e2
    return (f1 * f2 + e1 * e2) / n, n


def bbpssw(f):
    """(F', N) of BBPSSW on two Werner pairs of fidelity ``f`` (the published recurrence)."""
    return bbpssw_pair(f, f)


def _dejmps_abcd(lam):
    """The paper's (A, B, C, D) = (Phi+, Psi-, Psi+, Phi-) from states.py's (Phi+, Psi+, Psi-, Phi-)."""
    return lam[..., 0], lam[..., 2], lam[..., 1], lam[..., 3]


def dejmps_pair(lam1, lam2):
    """(lambda', N): DEJMPS on two Bell-diagonal pairs given by their coefficients in the order of
    :func:`qmc.repeaters.states.bell_coefficients` (Phi+, Psi+, Psi-, Phi-); the result in that order."""
    a1, b1, c1, d1 = _dejmps_abcd(jnp.asarray(lam1))
    a2, b2, c2, d2 = _dejmps_abcd(jnp.asarray(lam2))
    n = (a1 + b1) * (a2 + b2) + (c1 + d1) * (c2 + d2)
    a = (a1 * a2 + b1 * b2) / n
    b = (c1 * d2 + d1 * c2) / n
    c = (c1 * c2 + d1 * d2) / n
    d = (a1 * b2 + b1 * a2) / n
    return jnp.stack([a, c, b, d], axis=-1), n


def dejmps(lam):
    """(lambda', N) of DEJMPS on two copies of the pair with coefficients ``lam`` (Phi+, Psi+, Psi-, Phi-)."""
    return dejmps_pair(lam, lam)


def purify(c1, c2, method: str):
    """(correlations (..., 3) of the kept pair, success probability N) of ``method`` on the pairs
    with correlations ``c1`` (source) and ``c2`` (target), in the frame of :mod:`qmc.repeaters.states`."""
    if method == "bbpssw":
        f, n = bbpssw_pair(states.fidelity(c1), states.fidelity(c2))
        return states.werner(f), n
    if method == "dejmps":
        lam, n = dejmps_pair(states.bell_coefficients(c1), states.bell_coefficients(c2))
        return states.correlations(lam), n
    raise ValueError(f"purification {method!r}: must be one of {', '.join(METHODS)}")
