"""The checkpoint signing key on disk (an I/O edge).

PKCS#8 PEM, mode 0600 in a 0700 folder, created once with O_EXCL so that
two processes can never each make "the" key. A rotated key's file is kept
beside it with its key ID in the name; its public key stays in the catalog
and the log so that old checkpoints still verify.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from dockd.errors import DockdError


def host_id() -> str:
    """A stable short id of this machine for the default log origin."""
    try:
        return Path("/etc/machine-id").read_text().strip()[:12] or os.uname().nodename
    except OSError:
        return os.uname().nodename


def write_new_key(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        st = path.stat()
        if st.st_mode & 0o077:
            raise DockdError(
                f"{path}: signing key is readable by others (mode {st.st_mode & 0o777:o})"
            )
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise DockdError(f"{path}: cannot load the signing key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DockdError(f"{path}: signing key is not an Ed25519 key")
    return key


def load_or_create(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The key at `path`, creating it on first use; True if it was created."""
    try:
        return write_new_key(path), True
    except FileExistsError:
        return load_key(path), False
