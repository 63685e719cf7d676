"""Configuration: TOML at /etc/dockd/dockd.toml, every key defaulted.

A missing file means "all defaults"; an unreadable or invalid one raises
`ConfigError` naming the key, and the CLI exits with code 2.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dockd.errors import ConfigError
from dockd.integrity.note import NoteError, VerifierKey

DEFAULT_CONFIG_PATH = Path("/etc/dockd/dockd.toml")
DEFAULT_STATE_DIR = Path("/var/lib/dockd")
STATE_DIR_ENV = "DOCKD_STATE_DIR"

# Name shapes seen on GA/T 947 recorders (执法记录仪). The standard fixes no
# single naming, so these are only defaults: device serial 7 characters,
# officer number (警号) 6 characters, start time YYYYMMDDhhmmss, sequence.
DEFAULT_GAT947_PATTERNS: tuple[str, ...] = (
    r"^(?P<officer>[A-Za-z0-9]{6})_(?P<device>[A-Za-z0-9]{7})_(?P<time>\d{14})_(?P<seq>\d{1,6})(?:\.[^.]+)?$",
    r"^(?P<device>[A-Za-z0-9]{7})_(?P<officer>[A-Za-z0-9]{6})_(?P<time>\d{14})_(?P<seq>\d{1,6})(?:\.[^.]+)?$",
    r"^(?P<device>[A-Za-z0-9]{7})_(?P<time>\d{14})_(?P<seq>\d{1,6})(?:\.[^.]+)?$",
    r"^(?P<time>\d{14})_(?P<device>[A-Za-z0-9]{7})_(?P<seq>\d{1,6})(?:\.[^.]+)?$",
    r"^(?P<device>[A-Za-z0-9]{7})(?P<time>\d{14})(?P<seq>\d{4})(?:\.[^.]+)?$",
)

VIDEO_EXTENSIONS = ("mp4", "mov", "avi", "mkv", "ts", "mts", "m2ts", "3gp", "h264", "h265", "asf")
AUDIO_EXTENSIONS = ("wav", "mp3", "aac", "m4a", "amr", "ogg", "opus", "wma")
PHOTO_EXTENSIONS = ("jpg", "jpeg", "png", "heic", "dng", "bmp", "tif", "tiff")
DEFAULT_EXTENSIONS = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS + PHOTO_EXTENSIONS
DEFAULT_FOOTAGE_DIRS = (
    "DCIM", "VIDEO", "VIDEOS", "MOVIE", "MOVIES", "RECORD", "RECORDS", "AUDIO", "PHOTO",
    "PHOTOS", "PICTURE", "PICTURES", "FILE", "FILES", "NORMAL", "EVENT", "EMERGENCY",
)  # fmt: skip
# Folders that operating systems create on removable media; never footage.
DEFAULT_SYSTEM_DIRS = (
    "System Volume Information", "$RECYCLE.BIN", "RECYCLER", ".Trashes", ".Spotlight-V100",
    ".fseventsd", "LOST.DIR", ".TemporaryItems", "FOUND.000",
)  # fmt: skip


@dataclass(frozen=True)
class IngestConfig:
    wipe_after_verify: bool = True
    buffer_size: int = 1 << 20
    change_retries: int = 3
    change_retry_delay: float = 1.0
    max_depth: int = 32
    min_free_bytes: int = 64 << 20
    ffprobe: str = "ffprobe"
    ffprobe_timeout: float = 60.0
    # Files whose ffprobe runs while the next file is copied (0: probe inline).
    probe_ahead: int = 2


@dataclass(frozen=True)
class ProfileConfig:
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    footage_dirs: tuple[str, ...] = DEFAULT_FOOTAGE_DIRS
    system_dirs: tuple[str, ...] = DEFAULT_SYSTEM_DIRS
    name_patterns: tuple[str, ...] = DEFAULT_GAT947_PATTERNS
    # Camera clocks run in local time; names and FAT times are read in this zone.
    camera_timezone: str = "Asia/Shanghai"
    default_profile: str = "gat947"


@dataclass(frozen=True)
class IntegrityConfig:
    # Log origin and key name; empty means "dockd/<host id>".
    origin: str = ""
    # Signing key file; empty means STATE_DIR/keys/checkpoint.key.
    key_path: str = ""
    # Verifier keys (`name+id+key`) that checkpoints must be signed by; empty:
    # trust the keys the log itself introduced.
    trusted_keys: tuple[str, ...] = ()
    # A daily `dockd audit` re-hashes 1/audit_period_days of the store, so the
    # whole store is checked every this many days.
    audit_period_days: int = 30


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    # auto: journald under systemd, a readable console on a terminal, else key=value.
    format: str = "auto"


@dataclass(frozen=True)
class DeviceRule:
    """Which profile a docked camera gets: shell-style patterns on its USB identity.

    Empty patterns match anything; the first rule whose every pattern matches wins.
    """

    profile: str
    vendor_id: str = ""
    model_id: str = ""
    vendor: str = ""
    model: str = ""
    serial: str = ""
    # For cameras that need a vendor command before they show storage: a USB
    # control transfer "bmRequestType,bRequest,wValue,wIndex[,hex data]"
    # (devices/usbhook.py), sent when a USB device matching the rule appears.
    usb_command: str = ""


@dataclass(frozen=True)
class DevicesConfig:
    rules: tuple[DeviceRule, ...] = ()
    # Filesystems dockd mounts; anything else on a camera is reported, not touched.
    filesystems: tuple[str, ...] = ("vfat", "exfat")
    # Only USB block devices are cameras unless this is false (the udev rules
    # still decide which devices carry the dockd tag).
    usb_only: bool = True
    # A device with an assignment that has not docked for this long is overdue (R1).
    overdue_hours: float = 24.0
    # Cameras that need a USB command before they show storage (profile hook).
    usb_hooks: bool = True


@dataclass(frozen=True)
class DaemonConfig:
    # Cameras ingested at once; more wait, earliest deadline first.
    workers: int = 2
    # Socket and per-slot mount points live here (systemd RuntimeDirectory=dockd).
    runtime_dir: Path = Path("/run/dockd")
    # Group allowed to talk to the socket (read status, ask for changes).
    socket_group: str = "dockd"
    # "kernel": mount -t vfat|exfat; "fuse": fusefat / exfat-fuse.
    mount_backend: str = "kernel"
    mount_timeout: float = 30.0
    # Folder for footage from card readers; empty turns it off.
    drop_dir: str = ""
    # A dropped batch is ingested once nothing in it changed for this long.
    drop_settle_seconds: float = 10.0
    checkpoint_interval_minutes: float = 60.0
    audit_interval_minutes: float = 60.0
    overdue_check_interval_minutes: float = 60.0
    # Sessions kept in memory for `dockd status`.
    recent_sessions: int = 20


@dataclass(frozen=True)
class RetentionConfig:
    # "daily_enforcement": routine footage 2 years (000 Art. 20); "minimum":
    # 6 months (002 Art. 19). Long-term categories are permanent either way.
    preset: str = "daily_enforcement"
    # An expired recording waits this long as pending_deletion (dockd restore).
    grace_days: int = 7
    # A restored recording is not expired again before this many days.
    restore_days: int = 30
    # false: the daemon's daily sweep only logs its plan; nothing is deleted.
    auto_delete: bool = True
    sweep_interval_hours: float = 24.0
    # Continuity (R3, R7): a pause between two recordings of one docking
    # longer than this is an interruption to explain; 0 max: no upper bound.
    gap_threshold_seconds: float = 60.0
    gap_max_seconds: float = 0.0
    # A recording with neither cause nor case this long after ingest is unlabelled.
    label_after_days: float = 7.0


@dataclass(frozen=True)
class Config:
    state_dir: Path = DEFAULT_STATE_DIR
    ingest: IngestConfig = field(default_factory=IngestConfig)
    profiles: ProfileConfig = field(default_factory=ProfileConfig)
    integrity: IntegrityConfig = field(default_factory=IntegrityConfig)
    log: LogConfig = field(default_factory=LogConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)

    def with_state_dir(self, state_dir: Path) -> Config:
        return dataclasses.replace(self, state_dir=state_dir)


_SECTIONS: dict[str, type[Any]] = {
    "ingest": IngestConfig,
    "profiles": ProfileConfig,
    "integrity": IntegrityConfig,
    "log": LogConfig,
    "devices": DevicesConfig,
    "daemon": DaemonConfig,
    "retention": RetentionConfig,
}


def _coerce(key: str, value: Any, wanted: Any) -> Any:
    if wanted is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if wanted is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if value < 0:
            raise ConfigError(f"{key}: must not be negative, got {value}")
        return value
    if wanted is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if value < 0:
            raise ConfigError(f"{key}: must not be negative, got {value}")
        return float(value)
    if wanted is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if wanted == tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
        return tuple(value)
    if wanted == tuple[DeviceRule, ...]:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigError(f"{key}: expected a list of tables [[{key}]]")
        rules = []
        for i, table in enumerate(value):
            if "profile" not in table:
                raise ConfigError(f"{key}[{i}].profile: missing")
            rules.append(_build(DeviceRule, table, f"{key}[{i}]."))
        return tuple(rules)
    if wanted is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: expected a path string, got {value!r}")
        return Path(value)
    raise ConfigError(f"{key}: unsupported type")  # pragma: no cover - programming error


def _build(cls: type[Any], table: dict[str, Any], prefix: str) -> Any:
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    resolved = _resolved_types(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if key not in hints:
            raise ConfigError(f"{name}: unknown key")
        values[key] = _coerce(name, value, resolved[key])
    return cls(**values)


def _resolved_types(cls: type[Any]) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def _validate(config: Config) -> Config:
    ingest = config.ingest
    if ingest.buffer_size < 4096:
        raise ConfigError("ingest.buffer_size: must be at least 4096")
    if ingest.max_depth < 1:
        raise ConfigError("ingest.max_depth: must be at least 1")
    profiles = config.profiles
    try:
        ZoneInfo(profiles.camera_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"profiles.camera_timezone: unknown time zone {profiles.camera_timezone!r}"
        ) from None
    for i, pattern in enumerate(profiles.name_patterns):
        try:
            groups = set(re.compile(pattern).groupindex)
        except re.error as exc:
            raise ConfigError(
                f"profiles.name_patterns[{i}]: invalid regular expression: {exc}"
            ) from None
        unknown = groups - {"device", "officer", "time", "seq"}
        if unknown:
            raise ConfigError(
                f"profiles.name_patterns[{i}]: unknown named groups {sorted(unknown)} "
                "(allowed: device, officer, time, seq)"
            )
        if not groups & {"device", "officer", "time"}:
            raise ConfigError(
                f"profiles.name_patterns[{i}]: needs at least one of the groups "
                "device, officer, time"
            )
    if config.integrity.audit_period_days < 1:
        raise ConfigError("integrity.audit_period_days: must be at least 1")
    origin = config.integrity.origin
    if origin and any(c.isspace() or c == "+" for c in origin):
        raise ConfigError("integrity.origin: must not contain spaces or '+'")
    for i, text in enumerate(config.integrity.trusted_keys):
        try:
            VerifierKey.from_text(text)
        except NoteError as exc:
            raise ConfigError(f"integrity.trusted_keys[{i}]: {exc}") from None
    from dockd.devices.profiles import PROFILES

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
            from dockd.devices.usbhook import parse_usb_command

            parse_usb_command(rule.usb_command, f"devices.rules[{i}].usb_command")
            if not (rule.vendor_id and rule.model_id) or any(
                c in rule.vendor_id + rule.model_id for c in "*?["
            ):
                raise ConfigError(
                    f"devices.rules[{i}]: a usb_command needs exact vendor_id and model_id"
                )
    daemon = config.daemon
    if daemon.workers < 1:
        raise ConfigError("daemon.workers: must be at least 1")
    if daemon.mount_backend not in ("kernel", "fuse"):
        raise ConfigError("daemon.mount_backend: must be kernel or fuse")
    for name in (
        "checkpoint_interval_minutes",
        "audit_interval_minutes",
        "overdue_check_interval_minutes",
    ):
        if getattr(daemon, name) <= 0:
            raise ConfigError(f"daemon.{name}: must be more than 0")
    from dockd.retention.policy import PRESETS

    retention = config.retention
    if retention.preset not in PRESETS:
        raise ConfigError(
            f"retention.preset: must be one of {', '.join(PRESETS)}, got {retention.preset!r}"
        )
    if retention.sweep_interval_hours <= 0:
        raise ConfigError("retention.sweep_interval_hours: must be more than 0")
    if retention.gap_max_seconds and retention.gap_max_seconds <= retention.gap_threshold_seconds:
        raise ConfigError(
            "retention.gap_max_seconds: must be 0 (no bound) or more than gap_threshold_seconds"
        )
    if config.log.level not in ("debug", "info", "warning", "error"):
        raise ConfigError("log.level: must be one of debug, info, warning, error")
    if config.log.format not in ("keyvalue", "json", "console", "journald", "auto"):
        raise ConfigError("log.format: must be auto, keyvalue, json, console or journald")
    return config


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse TOML text into a validated Config."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "state_dir":
            kwargs[key] = _coerce(key, value, Path)
        elif key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a table [{key}]")
            kwargs[key] = _build(_SECTIONS[key], value, f"{key}.")
        else:
            raise ConfigError(f"{key}: unknown key")
    return _validate(Config(**kwargs))


def load_config(path: Path | None, state_dir: Path | None = None) -> Config:
    """Load the config file (default path if None; missing default file = defaults).

    The state directory is taken, in order, from `state_dir`, the
    DOCKD_STATE_DIR environment variable, the file, the default.
    """
    explicit = path is not None
    path = path or DEFAULT_CONFIG_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: config file not found") from None
        config = Config()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    else:
        config = parse_config(text, str(path))
    env = os.environ.get(STATE_DIR_ENV)
    if state_dir is not None:
        config = config.with_state_dir(state_dir)
    elif env:
        config = config.with_state_dir(Path(env))
    return config
