"""The hardware layer's error, apart, so every module of it can raise it."""
from __future__ import annotations


class HalError(RuntimeError):
    """A board that cannot be set up: bad profile, no GPIO, pin in use, no serial relay."""
