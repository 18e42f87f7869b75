"""The one-line messages stalesim reports: an error naming the bad field or option, and a notice."""

import sys


class ConfigError(ValueError):
    """A configuration field or an option is unknown or out of range; the message names it and what is allowed."""


def notice(message: str) -> None:
    """One line on stderr that a user should read but that does not stop the command (a deprecated name)."""
    print(f"stalesim: note: {message}", file=sys.stderr)
