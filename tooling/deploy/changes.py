"""What provisioning and tear-down did to each resource, one printable line each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Change:
    action: str  # created | updated | unchanged | skipped | deleted | kept | absent
    kind: str  # bucket, role, repository, compute environment, ...
    name: str
    detail: str = ""

    def line(self) -> str:
        return f"{self.action:<9} {self.kind} {self.name}" + (f": {self.detail}" if self.detail else "")


def updated_or_unchanged(kind: str, name: str, parts: list[str]) -> Change:
    """``parts`` names what had to be written; none means the resource already matched."""
    return Change("updated", kind, name, ", ".join(parts)) if parts else Change("unchanged", kind, name)
