"""Postroom: a self-hosted mail room for business applications."""

__version__ = "0.1.0"
