"""The analysis interface: a key rate from a link (closed form) or from observations (counts).

Every analysis is a frozen dataclass (a PyTree: its numbers can be swept and differentiated) with

* :meth:`AbstractAnalysis.key_rate` ``(link, protocol) -> KeyRate``: the rate from the exact
  engine's expected observations of the link (or from the link alone, for bounds);
* :meth:`AbstractAnalysis.key_rate_from_observations` ``(obs, protocol, link=None) -> KeyRate``:
  the rate from :class:`qmc.engines.Observations`, expected (``Observations.from_table``) or
  counted (a Monte Carlo tally, an experiment), for analyses with ``uses_observations`` true;
  ``link``, when given, only adds its validity check (and the source, where the analysis needs it);
* :meth:`AbstractAnalysis.protocol_checks`: the rules the analysis puts on the protocol (a
  vacuum decoy, key basis Z, ...), evaluated like ``checks()``: :meth:`validate_protocol` raises a
  :class:`qmc.ValidationError` naming the rule; inside traced code a broken rule gives rate 0 with
  the reason "invalid parameters".

Class attributes: ``name`` (the label of the analysis in configs and tables), ``uses_observations``,
``finite`` (finite-key analyses have a block size and security parameters) and ``parameters``:
which protocol parameters the rate depends on (``"signal"``, ``"decoys"``, ``"probabilities"``,
``"p_z"``), what the optimizer frees by default (:meth:`qmc.protocols.DecoyBB84.parameter_space`).
"""

from __future__ import annotations

import abc
from typing import ClassVar

from qmc.analysis.keyrate import OK, REASONS
from qmc.validation import ValidationError, is_valid, validate

__all__ = ["AbstractAnalysis"]


class AbstractAnalysis(abc.ABC):
    """A security analysis (see the module docstring)."""

    name: ClassVar[str]
    uses_observations: ClassVar[bool] = False
    finite: ClassVar[bool] = False
    parameters: ClassVar[tuple[str, ...]] = ("signal", "decoys", "probabilities", "p_z")

    @abc.abstractmethod
    def key_rate(self, link, protocol):
        """The key rate of ``protocol`` over ``link`` (a :class:`qmc.analysis.KeyRate`)."""

    def key_rate_from_observations(self, obs, protocol, link=None):
        """The key rate from observations (analyses with ``uses_observations``)."""
        raise TypeError(f"{self.name} does not work from observations (it needs the link: key_rate)")

    def checks(self):
        """Range checks of the analysis' own fields (:mod:`qmc.validation`)."""
        return []

    def protocol_checks(self, protocol):
        """Constraints this analysis puts on the protocol (``Rule`` objects, like ``checks``)."""
        return []

    def validate_protocol(self, protocol, prefix: str = "protocol."):
        """Raise :class:`qmc.ValidationError` naming the first violated protocol constraint."""
        for rule in self.protocol_checks(protocol):
            message = rule.error(protocol, prefix)
            if message is not None:
                raise ValidationError(message)
        return protocol

    def explain(self, link, protocol, out=None) -> str:
        """Why the key rate of ``protocol`` over ``link`` is what it is, in one line (concrete values
        only, never inside ``jit``).

        A broken rule is named with its values, in the words :func:`qmc.validate` and
        :func:`qmc.optimize.maximize` raise (``f_ec = 0.9 is out of range: must be >= 1``,
        ``protocol.key_basis = both: finite_lim2014 needs key_basis 'Z' ...``); otherwise the
        reason of ``out`` (default: this analysis' ``key_rate(link, protocol)``) with the numbers
        behind it, or ``ok`` and the rate.
        """
        for obj, prefix in ((self, ""), (link, ""), (protocol, "protocol.")):
            try:
                validate(obj, prefix)
            except ValidationError as err:
                return str(err)
        try:
            self.validate_protocol(protocol)
        except ValidationError as err:
            return str(err)
        out = self.key_rate(link, protocol) if out is None else out
        code = int(out.reason)
        if code == OK:
            return f"ok: {float(out.rate):.6g} secret bits per pulse"
        numbers = [f"{name} = {float(getattr(out, name)):.4g}" for name in ("gain", "qber", "y1", "e1")
                   if getattr(out, name, None) is not None]
        return f"{REASONS[code]} ({', '.join(numbers)})" if numbers else REASONS[code]

    def _valid(self, protocol, link=None):
        """Traced: the analysis, the protocol, the link (if given) and the protocol rules all hold."""
        ok = is_valid(self) & is_valid(protocol)
        if link is not None:
            ok = ok & is_valid(link)
        for rule in self.protocol_checks(protocol):
            ok = ok & rule.condition(protocol)
        return ok
