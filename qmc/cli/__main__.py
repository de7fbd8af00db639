"""``python -m qmc.cli``: the ``qmc`` command."""

from qmc.cli.command import main

main()
