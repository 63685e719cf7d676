"""Camera profiles: where a camera family keeps footage and what its names mean.

A profile is pure: it looks at relative paths (bytes, as on the volume) and
file names, never at the filesystem. `make_profile` builds one by name.
"""

from __future__ import annotations

from dockd.config import ProfileConfig
from dockd.devices.profiles.base import NameInfo, Profile
from dockd.devices.profiles.gat947 import Gat947Profile
from dockd.devices.profiles.generic import GenericProfile
from dockd.errors import ConfigError

PROFILES: dict[str, type[Profile]] = {
    GenericProfile.name: GenericProfile,
    Gat947Profile.name: Gat947Profile,
}


def make_profile(name: str, config: ProfileConfig) -> Profile:
    try:
        cls = PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ConfigError(f"unknown profile {name!r} (known: {known})") from None
    return cls(config)


__all__ = ["PROFILES", "NameInfo", "Profile", "make_profile"]
