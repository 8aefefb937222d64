"""Exceptions of the geo package."""

from __future__ import annotations


class GeoError(ValueError):
    """A geometry or CRS problem (bad CRS, empty line, point off the line...)."""


class SiteError(GeoError):
    """A site file is invalid.

    Carries the file, the field path (``sectors[2].to_m``) and the reason, and prints as
    ``FILE: FIELD: REASON`` so an operator can fix the file without reading code.
    """

    def __init__(self, file: str, field: str, reason: str) -> None:
        self.file = file
        self.field = field
        self.reason = reason
        super().__init__(f"{file}: {field}: {reason}" if field else f"{file}: {reason}")
