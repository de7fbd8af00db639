"""The result of an optimization."""

from __future__ import annotations

from typing import Any

import numpy as np

from qmc._pytree import pytree_dataclass

__all__ = ["Optimum"]


@pytree_dataclass
class Optimum:
    """Result of :func:`maximize` or :func:`maximize_sweep` (leaves batched like the input).

    Attributes:
        protocol: the optimal protocol (feasible by construction).
        rate: the analysis' output there (``KeyRate`` or ``FiniteKeyRate``); ``rate.rate`` is 0,
            with the analysis' reason in ``rate.reason``, where no start found a positive rate.
        theta: the unconstrained optimum.
        found: True where a positive rate was found.
        n_eval: evaluations of the loss and its gradient spent on this point (all starts and
            continuation rounds).
    """

    protocol: Any
    rate: Any
    theta: Any
    found: Any
    n_eval: Any = 0

    def parameters(self) -> dict[str, np.ndarray]:
        """Every protocol parameter, free or not, as a flat dict of numpy arrays (the protocol's
        :meth:`~qmc.protocols.DecoyBB84.parameters`: ``mu1``.., ``p_mu1``.., ``p_z``)."""
        return {k: np.asarray(v) for k, v in self.protocol.parameters().items()}
