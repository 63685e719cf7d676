"""C2SP signed notes with Ed25519 signatures (https://c2sp.org/signed-note).

A note is UTF-8 text ending in a newline, a blank line, then signature
lines `— <key name> base64(key ID || signature)`. The key ID is the first
four bytes of SHA-256(key name || 0x0A || 0x01 || public key). Verifier
keys travel as `<name>+<hex key ID>+base64(0x01 || public key)`, the form
Go's golang.org/x/mod/sumdb/note and the transparency-dev tools read.

Imports only the standard library and `cryptography`, so that the offline
verifier can use it on a machine without dockd's state.

A deliberate twin of this check lives in integrity/standalone_verify.py
(verify.py, which must run without dockd); tests hold them to the same verdicts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dockd.errors import VerifyError

ED25519 = 0x01
_DASH = "\u2014 "
MAX_SIGNATURES = 16


class NoteError(VerifyError, ValueError):
    """A note, key or signature is malformed or does not verify."""


def key_id(name: str, public: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public).digest()
    return int(struct.unpack(">I", digest[:4])[0])


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"invalid key name {name!r}: must be non-empty, no spaces or '+'")


@dataclass(frozen=True)
class VerifierKey:
    name: str
    public: bytes  # 32 bytes, RFC 8032 encoding

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.public)

    def to_text(self) -> str:
        blob = base64.b64encode(bytes([ED25519]) + self.public).decode()
        return f"{self.name}+{self.key_id:08x}+{blob}"

    @classmethod
    def from_text(cls, text: str) -> VerifierKey:
        parts = text.strip().split("+", 2)  # base64 may itself contain '+'
        if len(parts) != 3:
            raise NoteError("verifier key must be <name>+<hex id>+<base64 key>")
        name, hex_id, blob = parts
        _check_name(name)
        try:
            raw = base64.b64decode(blob, validate=True)
            claimed = int(hex_id, 16)
        except (binascii.Error, ValueError):
            raise NoteError("verifier key has a malformed id or key") from None
        if len(hex_id) != 8 or len(raw) != 33 or raw[0] != ED25519:
            raise NoteError("verifier key is not an Ed25519 key of 32 bytes")
        key = cls(name, raw[1:])
        if key.key_id != claimed:
            raise NoteError("verifier key id does not match its name and key")
        return key

    @classmethod
    def of(cls, name: str, private: Ed25519PrivateKey) -> VerifierKey:
        _check_name(name)
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(name, public)


def sign(text: str, name: str, private: Ed25519PrivateKey) -> str:
    """The signed note of `text` (which must end in a newline)."""
    _check_text(text)
    key = VerifierKey.of(name, private)
    signature = private.sign(text.encode())
    blob = base64.b64encode(struct.pack(">I", key.key_id) + signature).decode()
    return f"{text}\n{_DASH}{name} {blob}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("note text must not contain control characters")


@dataclass(frozen=True)
class OpenedNote:
    text: str
    verified_by: tuple[VerifierKey, ...]


def open_note(note: str, keys: Sequence[VerifierKey]) -> OpenedNote:
    """Verify `note` against `keys`; raise NoteError unless a known key signed it.

    Signatures by unknown keys are ignored; a failing signature by a known
    key rejects the whole note (fails closed).
    """
    text, sep, sigs = note.rpartition("\n\n")
    if not sep:
        raise NoteError("note has no signature block")
    text += "\n"
    _check_text(text)
    lines = sigs.split("\n")
    if lines[-1] != "":
        raise NoteError("note must end with a newline")
    lines = lines[:-1]
    if not lines or len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note must carry 1 to {MAX_SIGNATURES} signatures")
    known = {(k.name, k.key_id): k for k in keys}
    verified: list[VerifierKey] = []
    for line in lines:
        if not line.startswith(_DASH):
            raise NoteError("malformed signature line")
        name, _, blob = line[len(_DASH) :].partition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except binascii.Error:
            raise NoteError("signature is not base64") from None
        if len(raw) < 5:
            raise NoteError("signature is too short")
        key = known.get((name, int(struct.unpack(">I", raw[:4])[0])))
        if key is None:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key.public).verify(raw[4:], text.encode())
        except (InvalidSignature, ValueError):
            raise NoteError(f"signature by {name} does not verify") from None
        verified.append(key)
    if not verified:
        raise NoteError("note is not signed by any trusted key")
    return OpenedNote(text, tuple(verified))
