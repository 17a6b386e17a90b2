"""Consortia: an open platform that runs a library consortium."""

__version__ = "0.1.0"
