"""Bell-diagonal two-qubit states: swapping, memory decay, and the key they allow.

A Bell-diagonal state is written by its three correlations in the Pauli frame of |Phi+>,
``c = (c_x, c_y, c_z) = (<XX>, -<YY>, <ZZ>)``, all 1 for |Phi+>; its Bell coefficients are

    lambda_Phi+ = (1 + c_x + c_y + c_z) / 4     lambda_Phi- = (1 - c_x - c_y + c_z) / 4
    lambda_Psi+ = (1 + c_x - c_y - c_z) / 4     lambda_Psi- = (1 - c_x + c_y - c_z) / 4

(Phi- is a Z error on one qubit, Psi+ an X error, Psi- a Y error). A Werner state of fidelity F
has c_x = c_y = c_z = w = (4F - 1) / 3. Pauli errors compose as the group Z2 x Z2, and the
correlations are its characters, so:

- entanglement swapping of two Bell-diagonal pairs (a perfect Bell measurement and the Pauli
  correction) multiplies them: c = c1 * c2 component-wise (Werner: w = w1 w2, so N links of
  fidelity F give F_N = 1/4 + 3/4 ((4F - 1)/3)^N; Duer, Briegel, Cirac, Zoller, PRA 59, 169 (1999));
- a Pauli channel on one qubit multiplies them too: depolarizing with survival q multiplies all
  three by q, dephasing (Z error with probability (1 - d) / 2) multiplies c_x and c_y by d.

Everything the chain does to a pair is one of these, so the delivered pair is the product of the
links' correlations times the decay of the total time its qubits spent in memories.

Key per delivered pair (asymptotic, one-way post-processing, basis sifting neglected as with a
biased basis choice): BBM92 ``1 - h(e_x) - h(e_z)`` with e_z = (1 - c_z)/2 and e_x = (1 - c_x)/2
(Shor and Preskill, PRL 85, 441 (2000); for entanglement-based BBM92 Ma, Fung, Lo, PRA 76,
012307 (2007)); six-state ``1 - H(lambda)``, the entropy of the Bell coefficients (Lo, QIC 1, 81
(2001): the six-state protocol characterizes the Bell-diagonal state, and Devetak-Winter with
Eve holding its purification gives H(Z_A|E) - H(Z_A|Z_B) = 1 - H(lambda)).
"""

from __future__ import annotations

import jax.numpy as jnp

from qmc.entropy import h2

__all__ = ["werner", "bell_coefficients", "correlations", "fidelity", "swap", "decay",
           "error_rates", "bbm92_fraction", "six_state_fraction", "werner_chain_fidelity"]


def werner(fidelity):
    """Correlations (..., 3) of the Werner state of ``fidelity``."""
    w = (4.0 * jnp.asarray(fidelity) - 1.0) / 3.0
    return jnp.stack([w, w, w], axis=-1)


def bell_coefficients(c):
    """(lambda_Phi+, lambda_Psi+, lambda_Psi-, lambda_Phi-) from correlations ``c`` (..., 3)."""
    cx, cy, cz = c[..., 0], c[..., 1], c[..., 2]
    return 0.25 * jnp.stack([1 + cx + cy + cz, 1 + cx - cy - cz, 1 - cx + cy - cz, 1 - cx - cy + cz], axis=-1)


def correlations(lam):
    """Inverse of :func:`bell_coefficients`: (c_x, c_y, c_z) from the coefficients (..., 4)."""
    a, b, c, d = lam[..., 0], lam[..., 1], lam[..., 2], lam[..., 3]
    return jnp.stack([a + b - c - d, a - b + c - d, a - b - c + d], axis=-1)


def fidelity(c):
    """Fidelity with |Phi+>: lambda_Phi+ = (1 + c_x + c_y + c_z) / 4."""
    return 0.25 * (1.0 + c[..., 0] + c[..., 1] + c[..., 2])


def swap(c1, c2):
    """The pair after swapping pairs ``c1`` and ``c2`` with a perfect Bell measurement."""
    return c1 * c2


def decay(c, depolarizing, dephasing):
    """Correlations after Pauli noise: all three times ``depolarizing``, X and Y times ``dephasing``."""
    dep = jnp.asarray(depolarizing)[..., None]
    deph = jnp.asarray(dephasing)[..., None]
    return c * dep * jnp.concatenate([deph, deph, jnp.ones_like(deph)], axis=-1)


def werner_chain_fidelity(f_link, n_links):
    """Closed form of ``n_links`` Werner pairs of fidelity ``f_link`` joined by perfect swaps."""
    return 0.25 + 0.75 * ((4.0 * jnp.asarray(f_link) - 1.0) / 3.0) ** n_links


def error_rates(c):
    """(e_x, e_z): the error rates of X-basis and Z-basis measurements on both qubits."""
    return 0.5 * (1.0 - c[..., 0]), 0.5 * (1.0 - c[..., 2])


def bbm92_fraction(c):
    """Secret bits per delivered pair, BBM92: max(0, 1 - h(e_x) - h(e_z))."""
    e_x, e_z = error_rates(c)
    return jnp.maximum(1.0 - h2(e_x) - h2(e_z), 0.0)


def six_state_fraction(c):
    """Secret bits per delivered pair, six-state: max(0, 1 - H(lambda))."""
    lam = jnp.clip(bell_coefficients(c), 0.0, 1.0)
    safe = jnp.where(lam > 0.0, lam, 1.0)
    entropy = -jnp.sum(jnp.where(lam > 0.0, lam * jnp.log2(safe), 0.0), axis=-1)
    return jnp.maximum(1.0 - entropy, 0.0)
