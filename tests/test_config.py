"""Configuration: every key defaulted; a bad file names the key and exits 2."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dockd.cli import cli
from dockd.config import NUMERIC_RANGES, Config, load_config, parse_config
from dockd.errors import ConfigError


def test_no_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKD_STATE_DIR", raising=False)
    config = parse_config("")
    assert config == Config()
    assert config.ingest.wipe_after_verify is True
    assert str(config.state_dir) == "/var/lib/dockd"


def test_state_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "d.toml"
    file.write_text('state_dir = "/from/file"\n')
    monkeypatch.delenv("DOCKD_STATE_DIR", raising=False)
    assert load_config(file).state_dir == Path("/from/file")
    monkeypatch.setenv("DOCKD_STATE_DIR", "/from/env")
    assert load_config(file).state_dir == Path("/from/env")
    assert load_config(file, tmp_path / "flag").state_dir == tmp_path / "flag"


def test_full_file_parses() -> None:
    config = parse_config(
        """
        state_dir = "/srv/dockd"
        [ingest]
        wipe_after_verify = false
        buffer_size = 65536
        change_retry_delay = 0
        [profiles]
        camera_timezone = "UTC"
        name_patterns = ['^(?P<device>\\w{7})_(?P<time>\\d{14})']
        [log]
        level = "debug"
        """
    )
    assert config.ingest.wipe_after_verify is False and config.ingest.change_retry_delay == 0.0
    assert config.profiles.name_patterns == (r"^(?P<device>\w{7})_(?P<time>\d{14})",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[ingest]\nwipe_after_verify = 'yes'", "ingest.wipe_after_verify: expected true or false"),
        ("[ingest]\nbuffer_size = -1", "ingest.buffer_size: must not be negative"),
        ("[ingest]\nbuffer_size = 10", "ingest.buffer_size: must be at least 4096"),
        ("[ingest]\nbogus = 1", "ingest.bogus: unknown key"),
        ("bogus = 1", "bogus: unknown key"),
        ("ingest = 3", "ingest: expected a table"),
        (
            "[profiles]\ncamera_timezone = 'Mars/Base'",
            "profiles.camera_timezone: unknown time zone",
        ),
        (
            "[profiles]\nname_patterns = ['(']",
            "profiles.name_patterns[0]: invalid regular expression",
        ),
        (
            "[profiles]\nname_patterns = ['(?P<who>x)']",
            "profiles.name_patterns[0]: unknown named groups",
        ),
        (
            "[profiles]\nname_patterns = ['(?P<seq>x)']",
            "profiles.name_patterns[0]: needs at least one",
        ),
        ("[profiles]\nextensions = 'mp4'", "profiles.extensions: expected a list of strings"),
        ("[log]\nlevel = 'loud'", "log.level"),
        ("state_dir = 5", "state_dir: expected a path string"),
        ("not toml ===", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(text)


def test_bad_config_file_exits_2_with_the_key(tmp_path: Path) -> None:
    file = tmp_path / "dockd.toml"
    file.write_text("[ingest]\nchange_retries = 'many'\n")
    result = CliRunner().invoke(cli, ["--config", str(file), "--state-dir", str(tmp_path), "list"])
    assert result.exit_code == 2
    assert "ingest.change_retries: expected an integer" in result.output


def test_missing_explicit_config_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "nope.toml"), "list"])
    assert result.exit_code == 2
    assert "config file not found" in result.output


# -- numeric keys: NaN, infinity and range, for every key the dataclasses declare --


def _numeric_keys() -> dict[str, type]:
    """Every int/float key of every [section], found from the dataclasses.

    Read from Config's own fields (not from a list kept here), so a new key
    or a new section is walked by the tests below without touching them.
    """
    keys: dict[str, type] = {}
    for section, section_type in typing.get_type_hints(Config).items():
        if section_type in (int, float):
            keys[section] = section_type
        if not dataclasses.is_dataclass(section_type):
            continue
        for name, wanted in typing.get_type_hints(section_type).items():
            if wanted in (int, float):  # bool is neither: `bool in (int, float)` is False
                keys[f"{section}.{name}"] = wanted
            for inner in typing.get_args(wanted):
                # Tables inside a section ([[devices.rules]]) are not walked
                # below; fail here the day one of them gets a number.
                if dataclasses.is_dataclass(inner):
                    hints = typing.get_type_hints(inner).values()
                    assert not {int, float} & set(hints), f"walk the numbers of {inner}"
    return keys


NUMERIC_KEYS = _numeric_keys()

# Keys where 0 means something and is accepted (the rest refuse it, which
# the table in dockd/config.py says too; both are checked). Negative,
# NaN and infinite values are valid for no key.
ZERO_IS_VALID = {
    "ingest.change_retries",  # no re-copy: a changing file is stored flagged
    "ingest.change_retry_delay",  # re-copy at once
    "ingest.min_free_bytes",  # no reserve
    "ingest.probe_ahead",  # probe inline
    "ingest.resume_interval",  # no resumable copies
    "daemon.recent_sessions",  # status shows running sessions only
    "retention.grace_days",  # delete at the next sweep
    "retention.gap_threshold_seconds",  # any pause inside a recording counts
    "retention.gap_max_seconds",  # no upper bound
    "retention.label_after_days",  # unlabelled as soon as ingested
    "replicate.bandwidth_limit",  # no limit
}


def _toml(key: str, literal: str) -> str:
    section, _, name = key.rpartition(".")
    return f"[{section}]\n{name} = {literal}\n" if section else f"{name} = {literal}\n"


# A key whose extreme values would trip a check across keys gets the other
# key set out of the way, so that what is tested is the key's own range.
COMPANIONS = {
    "retention.gap_threshold_seconds": "gap_max_seconds = 0\n",  # 0: no bound to be above
}


def _literal(value: float) -> str:
    """A TOML literal: integral bounds as integers, so that int keys take them."""
    return str(int(value)) if float(value).is_integer() else repr(value)


def _value(config: Config, key: str) -> float:
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    assert isinstance(value, int | float)
    return value


def _parsed(key: str, literal: str) -> float:
    return _value(parse_config(_toml(key, literal) + COMPANIONS.get(key, "")), key)


def _refused_naming(key: str, literal: str) -> str:
    with pytest.raises(ConfigError) as info:
        _parsed(key, literal)
    message = str(info.value)
    assert message.startswith(f"{key}: "), message
    return message


def test_the_walk_finds_the_numeric_keys() -> None:
    """A sanity floor for the discovery, so an empty walk cannot pass."""
    assert NUMERIC_KEYS["ingest.change_retry_delay"] is float
    assert NUMERIC_KEYS["ingest.buffer_size"] is int
    assert NUMERIC_KEYS["retention.gap_max_seconds"] is float
    assert "ingest.wipe_after_verify" not in NUMERIC_KEYS  # bool
    assert len(NUMERIC_KEYS) >= 22


def test_every_numeric_key_has_a_range_and_its_default_is_in_it() -> None:
    assert set(NUMERIC_RANGES) == set(NUMERIC_KEYS), "one Range per numeric key, no stale ones"
    for key, valid in NUMERIC_RANGES.items():
        valid.check(key, _value(Config(), key))  # raises if the default is out of range
        assert math.isfinite(valid.low) and math.isfinite(valid.high) and valid.low < valid.high
        assert valid.low >= 0, f"{key}: no key takes a negative value"
        zero_ok = valid.low == 0 and valid.low_inclusive
        assert zero_ok == (key in ZERO_IS_VALID), f"{key}: decide whether 0 is valid"


@pytest.mark.parametrize("key", sorted(NUMERIC_KEYS))
@pytest.mark.parametrize("literal", ["nan", "+nan", "-nan", "inf", "+inf", "-inf", "-1", "-0.5"])
def test_nan_infinite_and_negative_are_refused_naming_the_key(key: str, literal: str) -> None:
    message = _refused_naming(key, literal)
    if NUMERIC_KEYS[key] is int and literal != "-1":
        assert "expected an integer" in message
    elif "nan" in literal:
        assert "not a number" in message
    elif "inf" in literal:
        assert "must be finite" in message
    else:
        assert "must not be negative" in message


@pytest.mark.parametrize("key", sorted(NUMERIC_KEYS))
def test_zero_is_accepted_only_where_it_means_something(key: str) -> None:
    if key in ZERO_IS_VALID:
        assert _parsed(key, "0") == 0
    else:
        assert "must be" in _refused_naming(key, "0")


@pytest.mark.parametrize("key", sorted(NUMERIC_KEYS))
@pytest.mark.parametrize("literal", ["1e300", "1" + "0" * 400])
def test_absurdly_large_is_refused_naming_the_key(key: str, literal: str) -> None:
    """An extra digit or three is a typo; a 400-digit integer must not overflow float()."""
    message = _refused_naming(key, literal)
    assert "must be at most" in message or "expected an integer" in message
    assert "0" * 30 not in message, "the error does not repeat a huge number"


@pytest.mark.parametrize("key", sorted(NUMERIC_KEYS))
def test_both_bounds_themselves(key: str) -> None:
    """The table's bounds are what the loader enforces, at both ends."""
    valid = NUMERIC_RANGES[key]
    assert _parsed(key, _literal(valid.high)) == valid.high
    if valid.low_inclusive:
        assert _parsed(key, _literal(valid.low)) == valid.low
    else:
        assert "must be more than" in _refused_naming(key, _literal(valid.low))
    step = 1 if NUMERIC_KEYS[key] is int else 0.5
    assert "must be at most" in _refused_naming(key, _literal(valid.high + step))


def test_a_huge_integer_is_a_config_error_not_a_traceback() -> None:
    """tomllib raises ValueError, not TOMLDecodeError, past Python's 4300-digit limit."""
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[ingest]\nchange_retry_delay = 1" + "0" * 5000)


def test_nan_retry_delay_in_a_file_exits_2_naming_the_key(tmp_path: Path) -> None:
    """What crashed the first ingest with `ValueError: Invalid value NaN` in time.sleep."""
    file = tmp_path / "dockd.toml"
    file.write_text("[ingest]\nchange_retry_delay = nan\n")
    # A real process, not CliRunner: what an operator sees, traceback or not.
    argv = ["--config", str(file), "--state-dir", str(tmp_path), "list"]
    result = subprocess.run(
        [sys.executable, "-m", "dockd", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result
    assert "ingest.change_retry_delay: not a number" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""


def test_replicate_settings_are_checked_naming_the_key() -> None:
    from dockd.settings import parse

    good = parse('[replicate]\nbucket = "evidence"\nendpoint = "http://127.0.0.1:7480"\n')
    assert good.replicate.enabled and good.replicate.prefix == ""
    assert not Config().replicate.enabled
    for text, key in [
        ('bucket = "Evidence_Bucket"', "replicate.bucket"),
        ('bucket = "ev"\nendpoint = "s3.example"', "replicate.endpoint"),
        ("require_before_wipe = true", "replicate.require_before_wipe"),
        ('bucket = "evidence"\nbandwidth_limit = 100', "replicate.bandwidth_limit"),
        ('bucket = "evidence"\npart_size = 1024', "replicate.part_size"),
        ('bucket = "evidence"\nprefix = "a//b"', "replicate.prefix"),
        ('bucket = "evidence"\nprefix = "../x"', "replicate.prefix"),
    ]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            parse(f"[replicate]\n{text}\n")


def test_screen_listen_is_host_and_port_or_off() -> None:
    from dockd.settings import parse

    assert parse("").screen.address() == ("127.0.0.1", 8088)  # on, on the loopback
    assert parse('[screen]\nlisten = ""\n').screen.address() is None
    assert parse('[screen]\nlisten = "127.0.0.1:8088"\n').screen.address() == ("127.0.0.1", 8088)
    assert parse('[screen]\nlisten = "[::1]:9000"\n').screen.address() == ("::1", 9000)
    for bad in ("8088", "localhost:", "127.0.0.1:99999", "a b:80"):
        with pytest.raises(ConfigError, match=r"screen\.listen"):
            parse(f'[screen]\nlisten = "{bad}"\n')
