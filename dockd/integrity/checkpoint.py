"""Checkpoints in the C2SP tlog-checkpoint format (https://c2sp.org/tlog-checkpoint).

    <origin>\n<decimal tree size>\n<base64 root hash>\n[<extension line>\n]*

The body is signed as a C2SP signed note (see note.py). Standard library
only, for the offline verifier.

A deliberate twin of this check lives in integrity/standalone_verify.py
(verify.py, which must run without dockd); tests hold them to the same verdicts.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from dockd.errors import VerifyError


class CheckpointError(VerifyError, ValueError):
    """A checkpoint body is malformed."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def to_text(self) -> str:
        lines = [
            self.origin,
            str(self.size),
            base64.b64encode(self.root).decode(),
            *self.extensions,
        ]
        return "".join(f"{line}\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint needs origin, size and root hash lines")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise CheckpointError("checkpoint origin is empty")
        if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
            raise CheckpointError(f"checkpoint size {size_text!r} is not a decimal number")
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error:
            raise CheckpointError("checkpoint root hash is not base64") from None
        if len(root) != 32:
            raise CheckpointError("checkpoint root hash is not 32 bytes")
        if any(not line for line in extensions):
            raise CheckpointError("checkpoint has an empty extension line")
        return cls(origin, int(size_text), root, tuple(extensions))
