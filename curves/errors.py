"""Errors of the group layer."""

from __future__ import annotations

__all__ = ["CurveError", "InvalidEncoding"]


class CurveError(Exception):
    """Base class of the errors raised by ``curves``."""


class InvalidEncoding(CurveError):
    """Bytes that are not the canonical encoding of an allowed point or scalar."""
