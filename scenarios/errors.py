"""The one-line messages stalesim reports: an error naming the bad field or option, and a notice."""

import sys


class ConfigError(ValueError):
    """A configuration field or an option is unknown or out of range; the message names it and what is allowed."""


def notice(message: str) -> None:
    """One line on stderr that a user should read but that does not stop the command (a deprecated name)."""
    print(f"stalesim: note: {message}", file=sys.stderr)


_SAID: set = set()  # the notices this process has given with notice_once


def notice_once(message: str) -> None:
    """``notice``, the first time this process has ``message`` to say (an old name read from
    every file of a folder is said once)."""
    if message not in _SAID:
        _SAID.add(message)
        notice(message)
