"""Signed notes and checkpoints: C2SP formats, failing closed on any change."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dockd.integrity.checkpoint import Checkpoint, CheckpointError
from dockd.integrity.note import NoteError, VerifierKey, key_id, open_note, sign

SEED = bytes(range(32))


def test_known_key_id_and_vkey_round_trip() -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    vkey = VerifierKey.of("dockd/test", key)
    assert vkey.key_id == key_id("dockd/test", vkey.public)
    assert VerifierKey.from_text(vkey.to_text()) == vkey
    name, hex_id, blob = vkey.to_text().split("+", 2)
    assert (name, int(hex_id, 16)) == ("dockd/test", vkey.key_id)
    assert base64.b64decode(blob)[0] == 0x01


def test_sign_and_open() -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    body = Checkpoint("dockd/test", 5, bytes(32)).to_text()
    note = sign(body, "dockd/test", key)
    assert note.startswith(body + "\n\u2014 dockd/test ")
    opened = open_note(note, [VerifierKey.of("dockd/test", key)])
    assert Checkpoint.from_text(opened.text) == Checkpoint("dockd/test", 5, bytes(32))


def _variants(note: str) -> list[str]:
    body, sig = note.split("\n\n")
    return [
        note.replace("\n5\n", "\n6\n"),  # size changed
        note.replace("dockd/test\n", "dockd/tesT\n", 1),  # origin changed
        body + "\n\n" + sig.replace(sig[-6:-2], "AAAA"),  # signature bytes changed
        body + "\n" + sig,  # no blank line
        sign(body + "\n", "other/key", Ed25519PrivateKey.generate())
        .split("\n\n")[1]
        .join([note, ""]),  # a further signature by an unknown key
        note[:-1],  # no final newline
    ]


def test_every_change_fails_closed() -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    vkey = VerifierKey.of("dockd/test", key)
    note = sign(Checkpoint("dockd/test", 5, bytes(32)).to_text(), "dockd/test", key)
    variants = _variants(note)
    for bad in variants[:4] + variants[5:]:
        with pytest.raises(NoteError):
            open_note(bad, [vkey])
    assert open_note(variants[4], [vkey]).verified_by == (vkey,), "unknown signers are ignored"
    other = VerifierKey.of("dockd/test", Ed25519PrivateKey.generate())
    with pytest.raises(NoteError, match="not signed by any trusted key"):
        open_note(note, [other])


@pytest.mark.parametrize(
    "text",
    [
        "o\n5\n",
        "o\n05\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "o\n-1\nAA==\n",
        "\n5\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "o\n5\nAAAA\n",
        "o\n5\n!!\n",
        "o\n5\n" + base64.b64encode(bytes(32)).decode(),
    ],
)
def test_malformed_checkpoints_raise_one_error_type(text: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.from_text(text)


@pytest.mark.parametrize(
    "text", ["a+b", "n+zzzzzzzz+AQ==", "n+00000000+" + "A" * 44, "a b+00000000+AQ=="]
)
def test_malformed_verifier_keys(text: str) -> None:
    with pytest.raises(NoteError):
        VerifierKey.from_text(text)
