"""Worlds defined by the tests (each folder registers itself when imported)."""
