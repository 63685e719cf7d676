"""Configuration: every key defaulted; a bad file names the key and exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dockd.cli import cli
from dockd.config import Config, load_config, parse_config
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
