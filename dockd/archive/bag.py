"""BagIt 1.0 bags (RFC 8493) for archival discs: the readable names and the staging.

The disc layout (the contract, see dockd/archive/__init__.py) is a bag whose
payload is `data/<unit>/<officer>/<YYYY-MM-DD>/<id>_<original name>` and whose
tag files are dockd's extract (`dockd/...`), `verify.py` and `README.txt`.

`write_bag` stages it: payload objects hard-linked from the store (copied and
fsynced when the store is on another filesystem), manifests written from the
hashes the catalog already proved, then the whole bag validated by
bagit-python, re-hashing every file: that proves the staged copy, not the
store.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import bagit  # type: ignore[import-untyped,unused-ignore]

from dockd.errors import DockdError
from dockd.integrity import standalone_verify
from dockd.integrity.standalone_verify import (
    BAG_INFO,
    BAGIT_TEXT,
    BAGIT_TXT,
    CATALOG_CSV,
    CATALOG_JSON,
    CHECKPOINT,
    ENTRIES,
    KEYS,
    MANIFEST,
    PROOFS,
    TAGMANIFEST,
)
from dockd.store import hash_file

UNASSIGNED = "_unassigned"
COMPONENT_CHARS = 100  # Joliet with -joliet-long allows 103 UCS-2 characters
COMPONENT_BYTES = 240  # Rock Ridge names land on Linux filesystems: 255 bytes at most
LABEL_CHARS = 48  # unit and officer folders: keeps whole paths short for Windows
_UNSAFE = re.compile(r'[\\/:*?"<>|;%\x00-\x1f\x7f-\x9f]')
_RESERVED = re.compile(r"(?i)(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?")
_CHUNK = 4 << 20
_RESERVED_TAGS = {BAGIT_TXT, BAG_INFO, MANIFEST, TAGMANIFEST}


class ArchiveError(DockdError):
    """A disc could not be staged, built, burned or read back as it should be."""


@dataclass(frozen=True)
class PayloadFile:
    source: Path  # the store object
    bag_path: str  # "data/..." inside the bag
    sha256: str  # as the catalog proved it at ingest
    size: int


# -- names -------------------------------------------------------------------------------


def _fit(text: str, chars: int, max_bytes: int) -> str:
    text = text[:chars]
    while len(text.encode("utf-8")) > max_bytes:
        text = text[:-1]
    return text


def safe_component(
    text: str, limit: int = COMPONENT_CHARS, *, empty: str = "_", max_bytes: int = COMPONENT_BYTES
) -> str:
    """`text` as one path component safe on ISO 9660/Joliet/Rock Ridge, Windows and Linux.

    NFC; `\\ / : * ? " < > |` (Windows), `;` (Joliet turns it into `_`
    itself, so the Windows name would differ from the manifest's), `%` and
    control characters become `_`, as do characters outside the BMP (Joliet
    is UCS-2); leading dots and spaces, trailing dots and spaces go; Windows
    device names get a `_` prefix; at most `limit` characters and
    `max_bytes` UTF-8 bytes. `%` is replaced so that manifest lines need no
    percent-encoding (RFC 8493 2.1.3) and stay readable by `sha256sum -c`.
    """
    text = unicodedata.normalize("NFC", text)
    text = "".join("_" if ord(c) > 0xFFFF else c for c in _UNSAFE.sub("_", text))
    text = text.lstrip(". ").rstrip(". ")
    if _RESERVED.fullmatch(text):
        text = "_" + text
    text = _fit(text, limit, max_bytes).rstrip(". ")
    return text or empty


def _file_name(prefix: str, name: str) -> str:
    """`prefix + name` capped, cutting the stem and keeping the extension."""
    name = safe_component(name, 10**6, empty="recording", max_bytes=10**6)
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 16:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    room_chars = COMPONENT_CHARS - len(prefix) - len(suffix)
    room_bytes = COMPONENT_BYTES - len(prefix.encode()) - len(suffix.encode())
    stem = _fit(stem, room_chars, room_bytes).rstrip(". ") or "recording"
    return prefix + stem + suffix


def bag_path_for(recording: Mapping[str, Any], zone: tzinfo | None = None) -> str:
    """`data/<unit>/<officer>/<YYYY-MM-DD>/<id>_<original file name>` for a recording.

    `recording` is a catalog row as JSON (`Recording.as_json()`): `id`, `unit`,
    `officer`, `recorded_start`, `source_path` (printable). The date is the
    recording's start in `zone` (default UTC: give the docks' zone so that the
    folder is the local day). A missing unit or officer is `_unassigned`.
    """
    rid = recording["id"]
    if not isinstance(rid, int) or isinstance(rid, bool) or rid < 0:
        raise ArchiveError(f"recording id {rid!r} is not a number")
    unit = str(recording.get("unit") or "").strip()
    officer = str(recording.get("officer") or "").strip()
    unit_dir = safe_component(unit, LABEL_CHARS, empty=UNASSIGNED) if unit else UNASSIGNED
    officer_dir = safe_component(officer, LABEL_CHARS, empty=UNASSIGNED) if officer else UNASSIGNED
    day = "_undated"
    start = recording.get("recorded_start")
    if isinstance(start, str):
        try:
            moment = datetime.fromisoformat(start.replace("Z", "+00:00"))
            if moment.tzinfo is not None:
                day = moment.astimezone(zone or UTC).strftime("%Y-%m-%d")
        except ValueError:
            pass
    source = str(recording.get("source_path") or recording.get("source_path_text") or "")
    original = re.split(r"[\\/]", source)[-1]
    return f"data/{unit_dir}/{officer_dir}/{day}/{_file_name(f'{rid}_', original)}"


def check_bag_paths(paths: Iterable[str]) -> None:
    """Raise ArchiveError unless the paths are safe, unique and distinct on Windows too.

    Windows compares names case-insensitively: two paths (or folders) that
    differ only in case would hide one another on a Joliet disc read there.
    """
    seen: dict[str, str] = {}
    unique: set[str] = set()
    for path in paths:
        if path in unique:
            raise ArchiveError(f"{path!r} appears twice in the bag")
        unique.add(path)
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ArchiveError(f"unsafe path in the bag: {path!r}")
        for part in parts:
            if safe_component(part) != part:
                raise ArchiveError(f"path component {part!r} of {path!r} is not disc-safe")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            key = unicodedata.normalize("NFC", prefix).casefold()
            other = seen.setdefault(key, prefix)
            if other != prefix:
                raise ArchiveError(f"{prefix!r} and {other!r} differ only in letter case")


# -- tag files ---------------------------------------------------------------------------


def bag_info(
    *,
    origin: str,
    label: str,
    disc: int,
    discs: int,
    export_id: str,
    copy: int,
    copies: int,
    bagging_date: str,
    description: str,
) -> dict[str, str]:
    """The bag-info.txt labels of a disc (Payload-Oxum is added by write_bag)."""
    return {
        "Source-Organization": origin,
        "Bagging-Date": bagging_date,
        "External-Identifier": label,
        "Bag-Count": f"{disc} of {discs}",
        "Bag-Group-Identifier": export_id,
        "Internal-Sender-Description": description,
        "dockd-Copy": f"{copy} of {copies}",
    }


def copy_bag_info(
    *,
    origin: str,
    package: str,
    purpose: str,
    for_party: str | None,
    request: int | None,
    by: str | None,
    bagging_date: str,
) -> dict[str, str]:
    """The bag-info.txt labels of a copy package (Payload-Oxum is added by write_bag).

    A copy package is one bag in a folder, not a disc: Bag-Count is 1 of 1 and
    External-Identifier the package's name. The purpose, the request it
    answers and the party it is for are named in `dockd-*` labels too.
    """
    group = f"dockd copy request {request}" if request is not None else f"dockd copy {package}"
    return {
        "Source-Organization": origin,
        "Bagging-Date": bagging_date,
        "External-Identifier": package,
        "Bag-Count": "1 of 1",
        "Bag-Group-Identifier": group,
        "Internal-Sender-Description": f"copy for {for_party or 'no named party'}: {purpose}",
        "dockd-Package": "copy",
        "dockd-Purpose": purpose,
        "dockd-Request": str(request) if request is not None else "none",
        "dockd-For-Party": for_party or "none",
        "dockd-Copied-By": by or "unknown",
    }


def verify_py() -> bytes:
    """The source of the standalone checker that goes on every disc as verify.py.

    The same bytes go into every `dockd log export` folder (standalone_verify.source).
    """
    return standalone_verify.source()


def disc_tag_files(
    *,
    recordings: Sequence[Mapping[str, Any]],
    entries: Sequence[bytes],
    tree_size: int,
    proofs: Mapping[int, Sequence[str]],
    checkpoint: str,
    keys: Sequence[str],
    readme: bytes,
) -> dict[str, bytes]:
    """Every tag file of the disc layout except bagit.txt, bag-info.txt and the manifests.

    `recordings`: one JSON object per recording (every label field), each
    with its `bag_path`; `entries`: log entries as stored (canonical bytes);
    `proofs`: seq -> base64 inclusion path against the `tree_size` of the
    signed `checkpoint` note; `keys`: verifier key texts; `readme`: the
    README.txt bytes (readme.readme_bytes).
    """
    records = [dict(r) for r in sorted(recordings, key=lambda r: int(r["id"]))]
    for record in records:
        if not str(record.get("bag_path", "")).startswith("data/"):
            raise ArchiveError(f"recording {record.get('id')} has no data/ bag_path")
    ordered = sorted(entries, key=lambda raw: int(json.loads(raw)["seq"]))
    for raw in ordered:
        if b"\n" in raw or not standalone_verify.is_canonical(raw):
            raise ArchiveError(f"log entry is not canonical JSON: {raw[:80]!r}")
    proofs_doc = {
        "tree_size": tree_size,
        "proofs": {str(seq): list(path) for seq, path in sorted(proofs.items())},
    }
    return {
        CATALOG_JSON: standalone_verify.catalog_json(records),
        CATALOG_CSV: standalone_verify.catalog_csv(records),
        ENTRIES: b"".join(raw + b"\n" for raw in ordered),
        PROOFS: (json.dumps(proofs_doc, indent=1, sort_keys=True) + "\n").encode(),
        CHECKPOINT: checkpoint.encode("utf-8"),
        KEYS: "".join(k.strip() + "\n" for k in keys).encode("utf-8"),
        "verify.py": verify_py(),
        "README.txt": readme,
    }


# -- staging -----------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _copy(source: Path, dest: Path) -> None:
    with open(source, "rb") as src, open(dest, "xb") as out:
        shutil.copyfileobj(src, out, _CHUNK)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(dest, 0o444)


def copy_checked(
    item: PayloadFile,
    dest: Path,
    progress: Callable[[int], None] | None = None,
    chunk: int = _CHUNK,
) -> None:
    """Copy the store object to `dest` (new), streamed, and prove the copy; mode 0444.

    The bytes read are hashed as they are written: they must hash to the
    recording's SHA-256 (`item.sha256`, proven at ingest) and be `item.size`
    long, or the store object is damaged. Then `dest` is fsynced, its cached
    pages dropped, and it is read back from the medium and hashed again: a
    medium that does not give back what it was given is refused. ArchiveError
    says which, naming the file. `progress` hears of every chunk of both passes.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    try:
        with open(item.source, "rb") as src, open(dest, "xb") as out:
            while block := src.read(chunk):
                digest.update(block)
                out.write(block)
                size += len(block)
                if progress is not None:
                    progress(len(block))
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        raise ArchiveError(f"{item.bag_path}: cannot copy {item.source}: {exc}") from None
    if digest.hexdigest() != item.sha256 or size != item.size:
        raise ArchiveError(
            f"{item.bag_path}: store object {item.source} reads as {digest.hexdigest()} "
            f"({size} bytes), the recording is {item.sha256} ({item.size} bytes): the "
            "store copy is damaged (run dockd audit); refusing to copy it"
        )
    try:
        again, again_size = hash_file(dest, chunk, progress)
    except OSError as exc:
        raise ArchiveError(f"{item.bag_path}: cannot read the copy back: {exc}") from None
    if (again, again_size) != (item.sha256, item.size):
        raise ArchiveError(
            f"{item.bag_path}: the copy reads back as {again} ({again_size} bytes), not as "
            f"the recording's {item.sha256}: the target medium failed; refusing it"
        )
    os.chmod(dest, 0o444)


def _place(item: PayloadFile, dest: Path) -> None:
    """Hard-link the store object to `dest`, or copy it if linking is impossible."""
    try:
        st = item.source.stat()
    except OSError as exc:
        raise ArchiveError(f"{item.bag_path}: store object {item.source}: {exc.strerror}") from None
    if st.st_size != item.size:
        raise ArchiveError(
            f"{item.bag_path}: store object {item.source} has {st.st_size} bytes, "
            f"the catalog says {item.size}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(item.source, dest)
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise ArchiveError(f"{item.bag_path}: cannot link {item.source}: {exc}") from None
    try:
        _copy(item.source, dest)
    except OSError as exc:
        raise ArchiveError(f"{item.bag_path}: cannot copy {item.source}: {exc}") from None


def _tag_line(label: str, value: str) -> str:
    if not label or ":" in label or label != label.strip() or any(c in label for c in "\r\n"):
        raise ArchiveError(f"invalid bag-info label {label!r}")
    if any(c in value for c in "\r\n"):
        raise ArchiveError(f"bag-info value of {label} must be one line")
    return f"{label}: {value}\n"


def _manifest(lines: Iterable[tuple[str, str]]) -> bytes:
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(lines)).encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _bagit_problems(exc: Exception) -> str:
    details = getattr(exc, "details", None) or []
    if details:
        shown = "; ".join(str(d) for d in details[:5])
        more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
        return f"{getattr(exc, 'message', exc)}: {shown}{more}"
    return str(exc)


def validate_bag(path: Path) -> None:
    """Full bagit-python validation (re-hashing every file); ArchiveError naming problems."""
    try:
        bagit.Bag(str(path)).validate(processes=1)
    except bagit.BagError as exc:
        raise ArchiveError(f"{path}: not a valid bag: {_bagit_problems(exc)}") from None


def write_bag(
    staging: Path,
    payload: list[PayloadFile],
    tag_files: dict[str, bytes],
    info: dict[str, str],
    *,
    place: Callable[[PayloadFile, Path], None] | None = None,
    validate: bool = True,
) -> Path:
    """Create the bag at `staging` (absent or empty) and prove it; return `staging`.

    Payload files are hard-linked from the store (copied and fsynced across
    filesystems), or placed by `place` (a copy package: `copy_checked`);
    manifest-sha256.txt is written from their known hashes, not re-hashed.
    `tag_files` maps bag paths outside data/ to their bytes; `info` is
    bag-info.txt in order (Payload-Oxum is computed here). The finished bag
    is validated by bagit-python, re-hashing every file, unless `validate`
    is False (the caller proves it otherwise).
    """
    if staging.exists() and (not staging.is_dir() or any(staging.iterdir())):
        raise ArchiveError(f"{staging}: staging folder must be absent or empty")
    for item in payload:
        if not item.bag_path.startswith("data/"):
            raise ArchiveError(f"payload path {item.bag_path!r} is not under data/")
        if not re.fullmatch(r"[0-9a-f]{64}", item.sha256):
            raise ArchiveError(f"{item.bag_path}: {item.sha256!r} is not a SHA-256 hex digest")
    for name in tag_files:
        if name.startswith("data/") or name in _RESERVED_TAGS or name.startswith("tagmanifest-"):
            raise ArchiveError(f"{name!r} cannot be a tag file of the bag")
    check_bag_paths([*(p.bag_path for p in payload), *tag_files, *_RESERVED_TAGS])
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "data").mkdir()

    for item in payload:
        (place or _place)(item, staging.joinpath(*item.bag_path.split("/")))
    octets = sum(p.size for p in payload)
    labels = {k: v for k, v in info.items() if k != "Payload-Oxum"}
    # Bagging-Date comes from the caller's clock (bag_info), or is left out (optional).
    labels["Payload-Oxum"] = f"{octets}.{len(payload)}"
    written: dict[str, bytes] = {
        BAGIT_TXT: BAGIT_TEXT.encode("utf-8"),
        BAG_INFO: "".join(_tag_line(k, v) for k, v in labels.items()).encode("utf-8"),
        MANIFEST: _manifest((p.bag_path, p.sha256) for p in payload),
        **tag_files,
    }
    for name, data in written.items():
        _write(staging.joinpath(*name.split("/")), data)
    _write(
        staging / TAGMANIFEST,
        _manifest((name, _sha256(data)) for name, data in written.items()),
    )
    for folder, _dirs, _files in os.walk(staging, topdown=False):
        _fsync_dir(Path(folder))
    if validate:
        validate_bag(staging)
    return staging
