"""intercom: SIP door-intercom firmware for the Raspberry Pi."""

# The one place the version is written: pyproject.toml reads it from here, and the
# station gets it without importlib.metadata (2 MB and 10 ms at every start).
__version__ = "0.1.0"
