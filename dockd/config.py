"""Configuration: TOML at /etc/dockd/dockd.toml, every key defaulted.

A missing file means "all defaults"; an unreadable or invalid one raises
`ConfigError` naming the key, and the CLI exits with code 2.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dockd.errors import ConfigError

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
    # Files probed while the next file is copied (0: probe inline).
    probe_ahead: int = 2
    # The Python that runs the long-lived probe workers (ingest/prober.py) with
    # Debian's python3-av, the libraries ffprobe uses; ffprobe judges whatever a
    # worker cannot read. Empty: one ffprobe per file.
    probe_python: str = "/usr/bin/python3"
    # A file at least this large is copied resumably: every this many bytes the
    # partial copy is fsynced and checkpointed, so a copy cut off by a pull or a
    # crash resumes from the last checkpoint (ingest/resume.py). 0: never.
    resume_interval: int = 256 << 20


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
    # Cameras ingested at once; more wait, earliest deadline first. 4: on 2 cores,
    # the shortest median "docked -> safe to undock" with 20 cameras docked at once
    # (bench/dock_scale.py: 22 s at 4, 25.5 s at 2, 26.8 s at 8, 29.6 s at 20).
    workers: int = 4
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
    # Continuity (R3, R7; retention/continuity.py): a pause longer than the
    # threshold is an interruption to explain when it splits one recording, or
    # when it lies between two clips of one case and is at most gap_max_seconds
    # (15 min; 0: no bound); other pauses are breaks between incidents.
    gap_threshold_seconds: float = 60.0
    gap_max_seconds: float = 900.0
    # A recording with neither cause nor case this long after ingest is unlabelled.
    label_after_days: float = 7.0


@dataclass(frozen=True)
class AccessConfig:
    """Who holds which role (dockd/access/roles.py): Unix groups, by name or number.

    A member of any group listed for a role holds it; root holds every role.
    `confidential` is not a role of its own: it is the grant an approver needs
    besides `supervisor` for a recording marked confidential.
    """

    officer: tuple[str, ...] = ("dockd-officer",)
    clerk: tuple[str, ...] = ("dockd-clerk",)
    supervisor: tuple[str, ...] = ("dockd-supervisor",)
    archivist: tuple[str, ...] = ("dockd-archivist",)
    auditor: tuple[str, ...] = ("dockd-auditor",)
    admin: tuple[str, ...] = ("dockd-admin",)
    confidential: tuple[str, ...] = ("dockd-confidential",)
    # An approval not given an end lasts this long (R6: a grant is for a time).
    approval_days: int = 7


@dataclass(frozen=True)
class ReplicateConfig:
    """Replication to S3 with Object Lock (dockd/replicate/); off while `bucket` is empty."""

    # The S3 endpoint (Ceph RGW, MinIO: "https://s3.example:7480"); empty: AWS's.
    endpoint: str = ""
    bucket: str = ""
    region: str = "us-east-1"
    # Key prefix of this dock in the bucket; empty: the log origin, so that
    # docks share a bucket and a central site tells them apart.
    prefix: str = ""
    # An AWS-style credentials file ([default] aws_access_key_id = …,
    # aws_secret_access_key = …), readable by dockd only; empty: boto3's own
    # sources (environment, ~/.aws, instance role).
    credentials: str = ""
    # Uploads in flight at once.
    workers: int = 2
    # Objects larger than this go up in parts of this size (S3: at least 5 MiB).
    part_size: int = 16 << 20
    # Bytes per second for all uploads together (0: no limit): a dock shares
    # its uplink with the station.
    bandwidth_limit: int = 0
    # true: a camera's file is deleted only once its object is verified in the
    # bucket ("waiting for upload" meanwhile). false (default): a dock works offline.
    require_before_wipe: bool = False
    # The oldest pending upload older than this is an error in `dockd doctor`
    # and a journald warning.
    alert_after_hours: float = 24.0

    @property
    def enabled(self) -> bool:
        return bool(self.bucket)


@dataclass(frozen=True)
class ScreenConfig:
    """The dock's screen (README "The dock's screen"): read-only, no login, no names."""

    # host:port it is served on (keep it on the loopback: a kiosk browser on the
    # dock's own display reads it, and the unit allows no other address); empty: off.
    listen: str = "127.0.0.1:8088"

    def address(self) -> tuple[str, int] | None:
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True)
class MetricsConfig:
    # A .prom file for node-exporter's textfile collector (its --collector.textfile
    # .directory), rewritten every minute; empty: off. /metrics on the screen's
    # listener serves the same text.
    textfile: str = ""


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
    access: AccessConfig = field(default_factory=AccessConfig)
    replicate: ReplicateConfig = field(default_factory=ReplicateConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def with_state_dir(self, state_dir: Path) -> Config:
        return dataclasses.replace(self, state_dir=state_dir)


def _number(value: float) -> str:
    """A bound as an operator wrote it: 4096, not 4096.0; 0.5 stays 0.5."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class Range:
    """The valid values of one numeric key: finite, from `low` up to `high`."""

    low: float
    high: float
    low_inclusive: bool = True

    def describe(self) -> str:
        low, high = _number(self.low), _number(self.high)
        return f"{low} to {high}" if self.low_inclusive else f"more than {low}, at most {high}"

    def check(self, key: str, value: float) -> None:
        """Raise ConfigError naming `key` unless `value` is in range.

        Called on the value as parsed, before float(): tomllib's integers
        are unbounded, and float(10**400) raises OverflowError.
        """
        valid = f"valid: {self.describe()}"
        # Only floats can be nan or inf; math.isnan(huge int) would overflow.
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError(f"{key}: not a number (nan); {valid}")
        if isinstance(value, float) and math.isinf(value):
            raise ConfigError(f"{key}: must be finite, got {value}; {valid}")
        if value > self.high:
            # Not the value itself: a typo of 400 digits helps nobody.
            shown = _number(value) if value <= 1e18 else "a larger number"
            raise ConfigError(f"{key}: must be at most {_number(self.high)}, got {shown}")
        if value < 0 <= self.low:
            raise ConfigError(f"{key}: must not be negative, got {value}; {valid}")
        if value < self.low or (value == self.low and not self.low_inclusive):
            bound = "at least" if self.low_inclusive else "more than"
            raise ConfigError(f"{key}: must be {bound} {_number(self.low)}, got {value}")


_HOUR_S = 3600
_DAY_MIN = 24 * 60
_YEAR_H = 365 * 24
# Day counts are added to "now" (timedelta, then datetime): a century stays
# far inside datetime's year 9999, and no retention rule needs more.
_CENTURY_DAYS = 100 * 365

# Every numeric key and its valid values, in one table. tests/test_config.py
# walks the dataclasses and fails if a numeric key is missing here. Upper
# bounds keep each value where the code that uses it cannot overflow
# (time.sleep, threading timeouts, timedelta, APScheduler intervals) and
# rule out what can only be a typo (an extra digit or three).
NUMERIC_RANGES: dict[str, Range] = {
    # Below 4096 the copy makes a syscall per few bytes; each worker holds
    # buffers of this size in memory, so more than 1 GiB is a typo.
    "ingest.buffer_size": Range(4096, 1 << 30),
    # 0: store a changing file at first sight (flagged changed_during_copy).
    "ingest.change_retries": Range(0, 100),
    # 0: re-copy at once. The camera's slot waits change_retries times this.
    "ingest.change_retry_delay": Range(0, 10 * 60),
    # The scanner recurses (two frames and one open fd per level): 255 stays
    # far below Python's recursion limit and the fd limit.
    "ingest.max_depth": Range(1, 255),
    # 0: no reserve beyond the file itself. More than 1 PiB is no disk.
    "ingest.min_free_bytes": Range(0, 1 << 50),
    # 0 would kill every ffprobe before it starts.
    "ingest.ffprobe_timeout": Range(0, _HOUR_S, low_inclusive=False),
    # 0: probe inline. Each is a thread and a probe worker, and after a crash up
    # to this many objects wait for the next docking to be adopted.
    "ingest.probe_ahead": Range(0, 64),
    # 0: off. Small values cost an fsync and a rename every that many bytes.
    "ingest.resume_interval": Range(0, 1 << 50),
    # A daily audit re-hashes 1/this of the store: 0 would divide by zero.
    "integrity.audit_period_days": Range(1, _CENTURY_DAYS),
    # 0 would make every assigned camera overdue the moment it docks; R1 is
    # a 24 h rule, a year is already no rule.
    "devices.overdue_hours": Range(0, _YEAR_H, low_inclusive=False),
    "daemon.workers": Range(1, 128),
    # 0 would give up on every mount at once.
    "daemon.mount_timeout": Range(0, _HOUR_S, low_inclusive=False),
    # 0 would hand out a batch while the card reader is still copying into it.
    "daemon.drop_settle_seconds": Range(0, _HOUR_S, low_inclusive=False),
    # Scheduler intervals: 0 would run the job without pause. DESIGN §4
    # wants checkpoints at least hourly; the audit runs daily or more often,
    # so that the store is re-hashed every integrity.audit_period_days;
    # overdue cameras (a 24 h rule) are looked for at least daily.
    "daemon.checkpoint_interval_minutes": Range(0, 60, low_inclusive=False),
    "daemon.audit_interval_minutes": Range(0, _DAY_MIN, low_inclusive=False),
    "daemon.overdue_check_interval_minutes": Range(0, _DAY_MIN, low_inclusive=False),
    # 0: `dockd status` shows only sessions still running.
    "daemon.recent_sessions": Range(0, 10_000),
    # 0: an expired recording is deleted by the next sweep, with no restore.
    "retention.grace_days": Range(0, _CENTURY_DAYS),
    "access.approval_days": Range(1, 366),
    # 0 would let the next sweep expire a recording just restored.
    "retention.restore_days": Range(1, _CENTURY_DAYS),
    "retention.sweep_interval_hours": Range(0, _YEAR_H, low_inclusive=False),
    # 0: any pause at all inside one recording is an interruption.
    "retention.gap_threshold_seconds": Range(0, 24 * _HOUR_S),
    # 0: no upper bound (see also the check against gap_threshold_seconds).
    "retention.gap_max_seconds": Range(0, 7 * 24 * _HOUR_S),
    # 0: unlabelled as soon as ingested.
    "retention.label_after_days": Range(0, _CENTURY_DAYS),
    "replicate.workers": Range(1, 64),
    # S3's parts are 5 MiB to 5 GiB; each worker holds one part in memory.
    "replicate.part_size": Range(5 << 20, 1 << 30),
    # 0: no limit. Below 64 KiB/s a 5 MiB part takes minutes: a typo.
    "replicate.bandwidth_limit": Range(0, 1 << 40),
    "replicate.alert_after_hours": Range(0, _YEAR_H, low_inclusive=False),
}


_SECTIONS: dict[str, type[Any]] = {
    "ingest": IngestConfig,
    "profiles": ProfileConfig,
    "integrity": IntegrityConfig,
    "log": LogConfig,
    "devices": DevicesConfig,
    "daemon": DaemonConfig,
    "retention": RetentionConfig,
    "access": AccessConfig,
    "replicate": ReplicateConfig,
    "screen": ScreenConfig,
    "metrics": MetricsConfig,
}


def _coerce(key: str, value: Any, wanted: Any) -> Any:
    if wanted is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if wanted is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        NUMERIC_RANGES[key].check(key, value)
        return value
    if wanted is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        # Before float(): a huge TOML integer would overflow it.
        NUMERIC_RANGES[key].check(key, value)
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
    """Checks across keys; one key's range is in NUMERIC_RANGES. What only the stage
    packages know (profile names, USB commands, presets, key texts) dockd/settings.py
    checks: this module is a leaf that every package may import."""
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
    origin = config.integrity.origin
    if origin and any(c.isspace() or c == "+" for c in origin):
        raise ConfigError("integrity.origin: must not contain spaces or '+'")
    for i, rule in enumerate(config.devices.rules):
        exact = (
            rule.vendor_id
            and rule.model_id
            and not any(c in rule.vendor_id + rule.model_id for c in "*?[")
        )
        if rule.usb_command and not exact:
            raise ConfigError(
                f"devices.rules[{i}]: a usb_command needs exact vendor_id and model_id"
            )
    daemon = config.daemon
    if daemon.mount_backend not in ("kernel", "fuse"):
        raise ConfigError("daemon.mount_backend: must be kernel or fuse")
    retention = config.retention
    if retention.gap_max_seconds and retention.gap_max_seconds <= retention.gap_threshold_seconds:
        raise ConfigError(
            "retention.gap_max_seconds: must be 0 (no bound) or more than gap_threshold_seconds"
        )
    listen = config.screen.listen
    if listen and not re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}", listen):
        raise ConfigError(f"screen.listen: expected host:port (or empty: off), got {listen!r}")
    if listen and not 0 < int(listen.rpartition(":")[2]) < 65536:
        raise ConfigError(f"screen.listen: no such port in {listen!r}")
    textfile = config.metrics.textfile
    if textfile and not (textfile.startswith("/") and textfile.endswith(".prom")):
        raise ConfigError(f"metrics.textfile: an absolute path ending in .prom, got {textfile!r}")
    replicate = config.replicate
    if replicate.bandwidth_limit and replicate.bandwidth_limit < 64 << 10:
        raise ConfigError("replicate.bandwidth_limit: 0 (no limit) or at least 65536 bytes/s")
    if replicate.endpoint and not re.match(r"^https?://[^/\s]+", replicate.endpoint):
        raise ConfigError(
            f"replicate.endpoint: expected http(s)://host[:port], got {replicate.endpoint!r}"
        )
    if replicate.bucket and not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", replicate.bucket):
        raise ConfigError(f"replicate.bucket: not an S3 bucket name: {replicate.bucket!r}")
    if replicate.require_before_wipe and not replicate.enabled:
        raise ConfigError("replicate.require_before_wipe: needs replicate.bucket")
    if config.log.level not in ("debug", "info", "warning", "error"):
        raise ConfigError("log.level: must be one of debug, info, warning, error")
    if config.log.format not in ("keyvalue", "json", "console", "journald", "auto"):
        raise ConfigError("log.format: must be auto, keyvalue, json, console or journald")
    return config


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse TOML text into a validated Config."""
    try:
        data = tomllib.loads(text)
    except ValueError as exc:
        # TOMLDecodeError is a ValueError; so is what tomllib lets through
        # from int() for an integer of more than 4300 digits.
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
