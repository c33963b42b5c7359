"""Compiled extensions built from the top-level cext/ folder (see setup.py)."""
