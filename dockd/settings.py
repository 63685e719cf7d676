"""The configuration as the fronts load it: dockd/config.py's shapes, checked
against what the stage packages know.

config.py is a leaf (every package reads its dataclasses), so it cannot ask
the device profiles which names exist, the USB hook whether a command
parses, the retention policy which presets there are, or the signed-note
code whether a pinned key is one. This edge does, once, where the CLI and
the daemon load the file: `load` and `parse` raise the same `ConfigError`
(exit 2) naming the key.
"""

from __future__ import annotations

from pathlib import Path

from dockd.config import Config, load_config, parse_config
from dockd.devices.profiles import PROFILES
from dockd.devices.usbhook import parse_usb_command
from dockd.errors import ConfigError, UsageError
from dockd.integrity.note import NoteError, VerifierKey
from dockd.replicate.keys import clean_prefix
from dockd.retention.policy import PRESETS


def check(config: Config) -> Config:
    """`config` if every value that names something of a stage names a real one."""
    for i, text in enumerate(config.integrity.trusted_keys):
        try:
            VerifierKey.from_text(text)
        except NoteError as exc:
            raise ConfigError(f"integrity.trusted_keys[{i}]: {exc}") from None
    known = set(PROFILES)
    if config.profiles.default_profile not in known:
        raise ConfigError(
            f"profiles.default_profile: unknown profile {config.profiles.default_profile!r} "
            f"(known: {', '.join(sorted(known))})"
        )
    for i, rule in enumerate(config.devices.rules):
        if rule.profile not in known:
            raise ConfigError(
                f"devices.rules[{i}].profile: unknown profile {rule.profile!r} "
                f"(known: {', '.join(sorted(known))})"
            )
        if rule.usb_command:
            parse_usb_command(rule.usb_command, f"devices.rules[{i}].usb_command")
    preset = config.retention.preset
    if preset not in PRESETS:
        raise ConfigError(f"retention.preset: must be one of {', '.join(PRESETS)}, got {preset!r}")
    if config.replicate.prefix:
        try:
            clean_prefix(config.replicate.prefix)
        except UsageError as exc:
            raise ConfigError(str(exc)) from None
    return config


def load(path: Path | None, state_dir: Path | None = None) -> Config:
    """config.load_config, checked (the default path if None; see there)."""
    return check(load_config(path, state_dir))


def parse(text: str, source: str = "<config>") -> Config:
    """config.parse_config, checked."""
    return check(parse_config(text, source))
