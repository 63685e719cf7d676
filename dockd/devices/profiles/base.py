"""What every profile shares: footage selection by folder and extension."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from dockd.config import ProfileConfig


@dataclass(frozen=True)
class NameInfo:
    """What a file name says about a recording; None where it says nothing."""

    device: str | None = None
    officer: str | None = None
    start: datetime | None = None  # aware, UTC
    seq: int | None = None


def _fold(name: bytes) -> str:
    return os.fsdecode(name).casefold()


class Profile:
    """Base profile: media files anywhere except operating-system folders."""

    name = "base"
    # When True, a file must sit under one of `footage_dirs` (at any depth below it).
    requires_footage_dir = False

    def __init__(self, config: ProfileConfig) -> None:
        self.config = config
        self._extensions = frozenset(e.casefold().lstrip(".") for e in config.extensions)
        self._footage_dirs = frozenset(d.casefold() for d in config.footage_dirs)
        self._system_dirs = frozenset(d.casefold() for d in config.system_dirs)

    def skip_dir(self, rel_parts: tuple[bytes, ...]) -> str | None:
        """Why the directory at `rel_parts` is not searched, or None to search it."""
        if _fold(rel_parts[-1]) in self._system_dirs:
            return "system folder"
        return None

    def skip_file(self, rel_parts: tuple[bytes, ...]) -> str | None:
        """Why the regular file at `rel_parts` is not footage, or None if it is."""
        base = rel_parts[-1]
        _, dot, ext = base.rpartition(b".")
        if not dot or _fold(ext) not in self._extensions:
            return "not a media file extension"
        if self.requires_footage_dir and not any(
            _fold(part) in self._footage_dirs for part in rel_parts[:-1]
        ):
            return "outside the footage folders"
        return None

    def parse_name(self, filename: bytes) -> NameInfo:
        """What the name says; the base profile reads nothing from names."""
        return NameInfo()
