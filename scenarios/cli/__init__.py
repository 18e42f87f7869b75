"""The ``stalesim`` command: its parser, its subcommands, one-line errors."""

from scenarios.cli.command import main

__all__ = ["main"]
