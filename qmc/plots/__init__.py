"""Figures: one rcParams style and one module per figure family.

Figure functions take results (rows of a results table, not configs) and ``ax=None``, never run
simulations, and return the matplotlib Figure; :func:`save` writes it as PNG and PDF beside the
results. Importing this package does not pick a matplotlib backend.
"""

from qmc.plots.style import RC_PARAMS, save, style

__all__ = ["RC_PARAMS", "save", "style"]
