"""The CASA and pipeline versions that made a delivery (pure).

Where they are written (restore.md §2.10, realworld.md "Import options by
era"): the pipeline manifest (``<casaversion name=...>``,
``<pipeline_version name=...>``), the README (Cycle 1-4 name the CASA
version there) and the logs (``casa_commands.log``, CASA log files, whose
first lines name the CASA version).  The manifest is authoritative; text
sources only fill what it does not say.
"""
from __future__ import annotations

import dataclasses
import re

from .era import versions_in_text

__all__ = ["DeliveryVersions", "versions_from_text", "version_tuple", "major_difference"]

@dataclasses.dataclass(frozen=True)
class DeliveryVersions:
    """Versions that made a delivery, each with where it was read."""

    casa: str | None = None
    pipeline: str | None = None
    casa_source: str = ""
    pipeline_source: str = ""

    def merged(self, other: DeliveryVersions) -> DeliveryVersions:
        """Fill what this one lacks from ``other`` (this one wins)."""
        return DeliveryVersions(
            casa=self.casa or other.casa, pipeline=self.pipeline or other.pipeline,
            casa_source=self.casa_source if self.casa else other.casa_source,
            pipeline_source=self.pipeline_source if self.pipeline else other.pipeline_source)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def versions_from_text(text: str, source: str) -> DeliveryVersions:
    """The first CASA and pipeline versions named in a README or log text
    (the patterns are :func:`almaqa_casa.delivery.era.versions_in_text`'s)."""
    found = versions_in_text(text[:200_000])
    return DeliveryVersions(casa=found.get("casa"), pipeline=found.get("pipeline"),
                            casa_source=source if "casa" in found else "",
                            pipeline_source=source if "pipeline" in found else "")


def version_tuple(version: str) -> tuple[int, ...]:
    """``'6.5.4-9'`` -> ``(6, 5, 4, 9)``; non-numeric parts are dropped."""
    return tuple(int(x) for x in re.findall(r"\d+", str(version)))


def major_difference(delivered: str | None, present: str) -> bool:
    """True when two CASA versions differ in major or minor number (6.6 vs 6.7)."""
    if not delivered:
        return False
    a, b = version_tuple(delivered)[:2], version_tuple(present)[:2]
    return bool(a) and bool(b) and a != b
