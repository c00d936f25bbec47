"""Subcommand modules of the ``analogtrain`` command (see analogtrain.cli.SUBCOMMANDS).

Each imports torch and the run loop only inside ``main()``, so building the parser stays light.
"""
