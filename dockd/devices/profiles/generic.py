"""Generic cameras: media files under DCIM/ and the common footage folders."""

from __future__ import annotations

from dockd.devices.profiles.base import Profile


class GenericProfile(Profile):
    name = "generic"
    requires_footage_dir = True
