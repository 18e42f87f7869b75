"""The error stalesim reports as one line: a configuration field or an option is unknown or out of range."""


class ConfigError(ValueError):
    """A configuration field or an option is unknown or out of range; the message names it and what is allowed."""
