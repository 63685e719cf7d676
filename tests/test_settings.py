"""The load edge (dockd/settings.py): names a stage must know are checked there,
so that dockd/config.py stays a leaf (tests/test_layout.py) and still no front
starts on a config that names a profile, a preset or a key that does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockd import settings
from dockd.config import parse_config
from dockd.errors import ConfigError

BAD = [
    ('[profiles]\ndefault_profile = "nope"\n', "profiles.default_profile: unknown profile 'nope'"),
    (
        '[[devices.rules]]\nprofile = "nope"\n',
        "devices.rules[0].profile: unknown profile 'nope'",
    ),
    (
        '[[devices.rules]]\nvendor_id = "1234"\nmodel_id = "5678"\nprofile = "generic"\n'
        'usb_command = "0x40"\n',
        "devices.rules[0].usb_command",
    ),
    ('[retention]\npreset = "forever"\n', "retention.preset: must be one of"),
    ('[integrity]\ntrusted_keys = ["not a key"]\n', "integrity.trusted_keys[0]"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_the_edge_refuses_what_names_nothing(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        settings.parse(text)
    assert str(info.value).startswith(message)
    path = tmp_path / "dockd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.split(":")[0].replace("[", r"\[")):
        settings.load(path, tmp_path / "state")
    # The shapes are fine: config.py alone cannot tell, and does not pretend to.
    parse_config(text)


def test_a_good_config_passes_the_edge_unchanged() -> None:
    text = '[profiles]\ndefault_profile = "generic"\n[retention]\npreset = "minimum"\n'
    assert settings.parse(text) == parse_config(text)
