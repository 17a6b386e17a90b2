"""Consortia: an open platform that runs a library consortium."""

from consortia import native

__version__ = "0.1.0"

# Compiled copies of the hot modules, when built and unchanged (consortia/native.py).
native.install()
