"""Which profile a docked camera gets.

Two steps, in order:

1. `profile_for`: the operator's rules (`[[devices.rules]]` in dockd.toml),
   shell-style patterns on the camera's USB identity. The first rule whose
   every non-empty pattern matches wins. This is the reliable way: a rule
   names exactly the cameras it means.
2. `recognise_layout`: the fallback for cameras no rule names. It looks at a
   short listing of the volume (`list_names`) and picks "gat947" when a media
   file there is named the way GA/T 947 recorders name footage, else the
   configured `profiles.default_profile`. It never picks a profile that
   would take fewer files than the default does: "generic" (footage folders
   only) is chosen only by a rule or by the configuration, never by guessing,
   because a wrong guess there would leave footage on the camera.

Both decisions are pure; only `list_names` touches the filesystem.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable
from fnmatch import fnmatchcase
from pathlib import Path

from dockd.config import DeviceRule, DevicesConfig, ProfileConfig
from dockd.devices.identity import DeviceIdentity
from dockd.devices.profiles import NameInfo, make_profile

# The rule fields, each compared with the DeviceIdentity field of the same name.
_RULE_FIELDS = ("vendor_id", "model_id", "vendor", "model", "serial")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def rule_matches(rule: DeviceRule, identity: DeviceIdentity) -> bool:
    """True if every non-empty pattern of `rule` matches `identity`.

    Patterns are shell-style (`*`, `?`, `[…]`) and compared case-insensitively:
    udev reports USB ids as lower-case hex and vendor strings as the device
    spells them, and an operator writing `vendor = "ACME*"` means "Acme" too.
    A pattern must match the whole value; an empty value matches only `*`.
    """
    for name in _RULE_FIELDS:
        pattern: str = getattr(rule, name)
        if not pattern:
            continue
        value: str = getattr(identity, name)
        if not fnmatchcase(value.casefold(), pattern.casefold()):
            return False
    return True


def profile_for(identity: DeviceIdentity, config: DevicesConfig) -> str | None:
    """The profile of the first rule in `config.rules` that matches, or None.

    None means "no rule names this camera": the caller falls back to
    `recognise_layout`. A rule with no patterns at all matches every camera,
    so it serves as an explicit catch-all at the end of the list.
    """
    for rule in config.rules:
        if rule_matches(rule, identity):
            return rule.profile
    return None


def recognise_layout(names: Iterable[tuple[bytes, ...]], config: ProfileConfig) -> str:
    """The profile for a camera that no rule names, judged from its files.

    `names` are relative paths (components as bytes, as on the volume) of
    files, e.g. from `list_names`. Returns "gat947" if at least one of them
    is a media file (by the profile's extension list, outside system
    folders) whose name parses with the configured GA/T 947 name patterns;
    otherwise `config.default_profile`.
    """
    gat947 = make_profile("gat947", config)
    for rel in names:
        if not rel or gat947.skip_file(rel) is not None:
            continue
        if any(gat947.skip_dir(rel[: i + 1]) is not None for i in range(len(rel) - 1)):
            continue
        if gat947.parse_name(rel[-1]) != NameInfo():
            return "gat947"
    return config.default_profile


def list_names(root: Path, limit: int, max_depth: int = 8) -> list[tuple[bytes, ...]]:
    """Relative paths of up to `limit` regular files under `root`, breadth first.

    A cheap look at a volume for `recognise_layout`, safe on hostile media:
    at most `limit` directory entries (files, folders and anything else) are
    read in all, at most `max_depth` folders deep, and nothing is followed
    through a symbolic link: every folder is opened with O_NOFOLLOW relative
    to the one it was found in, so a link (or a folder swapped for a link
    meanwhile) cannot lead off the volume. Folders that cannot be read are
    passed over silently: this listing only guides a guess, and the scanner
    reports unreadable folders properly later.

    Requires limit >= 0 and max_depth >= 1. Breadth first so that the
    top-level footage folders are seen before the limit runs out.
    """
    found: list[tuple[bytes, ...]] = []
    try:
        root_fd = os.open(root, _DIR_FLAGS)
    except OSError:
        return found
    seen = 0
    # Folders are queued by relative path, not by open fd, so that a wide
    # volume cannot run the daemon out of file descriptors.
    queue: deque[tuple[bytes, ...]] = deque([()])
    try:
        while queue and seen < limit:
            rel_dir = queue.popleft()
            try:
                dir_fd = _open_dir(root_fd, rel_dir)
            except OSError:
                continue
            try:
                with os.scandir(dir_fd) as entries:
                    for entry in entries:
                        if seen >= limit:
                            break
                        seen += 1
                        rel = (*rel_dir, os.fsencode(entry.name))
                        if entry.is_file(follow_symlinks=False):
                            found.append(rel)
                        elif entry.is_dir(follow_symlinks=False) and len(rel) < max_depth:
                            queue.append(rel)
            except OSError:
                continue
            finally:
                os.close(dir_fd)
    finally:
        os.close(root_fd)
    return found


def _open_dir(root_fd: int, rel_dir: tuple[bytes, ...]) -> int:
    """An fd for the folder at `rel_dir`, reached one O_NOFOLLOW step at a time."""
    fd = os.dup(root_fd)
    try:
        for part in rel_dir:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except OSError:
        os.close(fd)
        raise
    return fd
