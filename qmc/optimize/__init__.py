"""Optimization of protocol parameters for a given link (JAX autodiff, batched).

The protocol declares its free parameters (:meth:`qmc.protocols.DecoyBB84.parameter_space`): a
space that maps an unconstrained vector theta onto the feasible set, so every iterate satisfies
the protocol's constraints by construction. The optimizer minimizes -ln R over theta
(:mod:`qmc.optimize.objective`) and never names a protocol field.

* :func:`maximize`: several starts per link side by side (the given protocol and the best of a
  pool of spread-out starts, screened by loss value), vmapped over links.
* :func:`maximize_sweep`: continuation along a sweep: chains of consecutive points, each point
  warm-started from the previous optimum (extrapolated, with its inverse Hessian), a spread-out
  start every few points, then passes that restart every point from its neighbours' optima while
  that improves any point (:mod:`qmc.optimize.continuation`). Everything is one ``jax.jit`` call.
* Solvers are optax transformations run by one driver (:func:`minimize`): qmc's BFGS
  (:func:`bfgs`, the default: dense BFGS with a backtracking line search), ``optax.lbfgs`` with
  its zoom line search, or any other transformation or chain, by name or as an object, on the same
  loss, reparameterization, starts and drivers.
* :func:`random_search`: a derivative-free search over the same spaces (a cross-check, and a
  fallback where the loss gives no direction).
* :func:`check_block_engine`: an optimum replayed by the block engine's sessions.

A point where no start gives a positive rate returns rate 0 with the analysis' reason
(``Optimum.found`` is False there).
"""

from qmc.optimize.bfgs import bfgs, minimize_bfgs
from qmc.optimize.check import check_block_engine
from qmc.optimize.drivers import SOLVERS, check_problem, default_space, maximize, maximize_sweep
from qmc.optimize.minimize import minimize, solver_from
from qmc.optimize.objective import objective
from qmc.optimize.result import Optimum
from qmc.optimize.search import random_search

__all__ = [
    "maximize", "maximize_sweep", "random_search", "default_space", "objective", "Optimum", "bfgs", "minimize",
    "minimize_bfgs", "solver_from", "SOLVERS", "check_block_engine", "check_problem",
]
