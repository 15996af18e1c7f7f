"""Bit-exact NumPy reference semantics of every Jalapeño block."""
