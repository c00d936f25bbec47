"""Subcommand modules of the ``analogtrain`` command (see analogtrain.cli.SUBCOMMANDS)."""
