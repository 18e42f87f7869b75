"""Validation of user-given values: one error line that names the field and what is allowed.

Pure Python (no JAX), so ``sim``, ``algorithms`` and ``scenarios`` use the same checks::

    >>> Spec(int, low=1).check("workers", 0, ValueError)
    Traceback (most recent call last):
    ValueError: workers: must be an integer >= 1, got 0

Each package raises its own error class (``SpecError``, ``RuleError``, ``ConfigError``),
passed as ``error``.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple, Optional


class Spec(NamedTuple):
    """What a field allows: a kind (``int``, ``float``, ``str``, ``bool``, or ``tuple``:
    a list of finite numbers, each within the bounds), optional choices, bounds
    (inclusive unless ``*_open``), whether ``None`` is allowed, and words allowed in
    place of a number (``words``: GSGM's window ``k`` is a number, ``half`` or ``all``)."""

    kind: type
    choices: tuple = ()
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    words: tuple = ()

    def describe(self) -> str:
        if self.kind is tuple:
            item = Spec(float, (), self.low, self.high, self.low_open, self.high_open).describe()
            return "a list of numbers" + item[len("a finite number"):] + " (comma-separated; empty for none)"
        if self.choices:
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.kind is bool:
            text = "true or false"
        else:
            text = "an integer" if self.kind is int else ("a string" if self.kind is str else "a finite number")
            if self.low is not None and self.high is not None:
                text += (f" in {'(' if self.low_open else '['}{_num(self.low)}, "
                         f"{_num(self.high)}{')' if self.high_open else ']'}")
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {_num(self.low)}"
            elif self.high is not None:
                text += f" {'<' if self.high_open else '<='} {_num(self.high)}"
        if self.words:
            text += ", or " + " or ".join(self.words)
        return text + (" (or none)" if self.optional else "")

    def check(self, name: str, value, error=ValueError):
        """``value`` if allowed (ints widened to float for float fields), else ``error``."""
        if value is None and self.optional:
            return None
        if isinstance(value, str) and value in self.words:
            return value
        if self.kind is tuple:  # a list (e.g. from TOML) or tuple of numbers -> a tuple of floats (hashable)
            item = Spec(float, (), self.low, self.high, self.low_open, self.high_open)
            try:
                if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                    raise ValueError
                return tuple(item.check(name, v, ValueError) for v in value)
            except ValueError:
                raise error(f"{name}: must be {self.describe()}, got {value!r}") from None
        if self.kind is bool:
            ok = isinstance(value, bool)
        elif self.kind is str:
            ok = isinstance(value, str)
        elif self.kind is int:
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            if ok:
                value = int(value)
        else:
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            if ok:
                value = float(value)
        ok = ok and (not self.choices or value in self.choices)
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value < self.high if self.high_open else value <= self.high
        if not ok:
            raise error(f"{name}: must be {self.describe()}, got {value!r}")
        return value

    def parse(self, name: str, text: str, error=ValueError):
        """A command-line string parsed by the field's kind, then checked."""
        text = text.strip()
        if self.optional and text.lower() in ("none", "default", ""):
            return None
        if text in self.words:
            return text
        if self.kind is tuple:  # "1,1,2,4" or "1 1 2 4", brackets optional; "" = empty
            parts = [p for p in text.strip("[]()").replace(",", " ").split() if p]
            try:
                values = [float(p) for p in parts]
            except ValueError:
                raise error(f"{name}: must be {self.describe()}, got {text!r}") from None
            return self.check(name, values, error)
        if self.kind is bool:
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise error(f"{name}: must be true or false, got {text!r}")
            return self.check(name, lowered in ("true", "1", "yes"), error)
        if self.kind in (int, float):
            try:
                value = int(text) if self.kind is int else float(text)
            except ValueError:
                raise error(f"{name}: must be {self.describe()}, got {text!r}") from None
            return self.check(name, value, error)
        return self.check(name, text, error)


def _num(x: float) -> str:
    return f"{x:g}"


def check(name: str, value, error=ValueError, *, kind: type = float, low=None, high=None, low_open=False,
          high_open=False, optional=False, choices=()):
    """``Spec(...).check(name, value, error)`` in one call, for a rule's arguments."""
    return Spec(kind, tuple(choices), low, high, low_open, high_open, optional).check(name, value, error)
