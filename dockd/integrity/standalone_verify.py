#!/usr/bin/env python3
"""verify.py: check an evidence disc or a log export written by dockd.

    python3 verify.py [FOLDER] [--key NAME+ID+KEY ...]      (Windows: py verify.py)

FOLDER defaults to the folder this file is in: dockd copies this file,
unchanged, to the root of every archival disc and into every `dockd log
export` folder. Needs only Python 3.8 or newer and, to check the signature,
the `cryptography` package (`pip install cryptography`); not dockd.

On purpose, this file repeats the RFC 9162 verifiers of dockd/integrity/
merkle.py, the signed-note check of note.py and the checkpoint parser of
checkpoint.py: it must run where dockd is not installed. The twins are kept
equal by tests (tests/archive/test_disc_verify.py, tests/integrity/
test_export_verify.py: the same verdicts on the same corruptions).

A folder with bagit.txt is a disc: a BagIt 1.0 bag whose layout is specified
in dockd/archive/__init__.py. It checks that:

  1. bagit.txt and bag-info.txt are there (Payload-Oxum agrees with data/);
  2. every line of manifest-sha256.txt matches its file's SHA-256, and every
     file under data/ is listed (none extra, none missing);
  3. the same for tagmanifest-sha256.txt and every file outside data/;
  4. dockd/checkpoint.txt is signed (Ed25519, C2SP signed note) by a key of
     dockd/keys.txt, or of --key: an auditor should take the key from an
     independent copy (a court file, an earlier disc), not from this disc;
  5. every entry of dockd/entries.jsonl is canonical JSON and its RFC 9162
     inclusion proof (dockd/proofs.json) leads to the checkpoint's root;
  6. every data/ file's SHA-256 is the one a `recording.ingested` log entry
     recorded for the recording that dockd/catalog.json says the file is;
  7. the labels in dockd/catalog.json (officer, unit, cause, parties, ...)
     are those the log entries state, and dockd/catalog.csv says the same.

A folder without bagit.txt that holds entries.jsonl, proofs.json,
checkpoint.txt or keys.txt is a log export, written by `Service.export_log`
(dockd/service/ledger.py, which specifies its layout). It checks that:

  1. checkpoint.txt is signed by a key of keys.txt, or of --key (as above);
  2. every entry of entries.jsonl is canonical JSON and its RFC 9162
     inclusion proof (proofs.json) leads to the checkpoint's root;
  3. the lines are the consecutive entries proofs.json names ("from",
     "to"), each one's `prev` the SHA-256 of the line before it (the first
     line's: zeros for log entry 1, else proofs.json "prev_of_first").

A log export whose proofs.json has a "scope" is a scoped export, written by
`Service.export_log_scoped` (`dockd log export --case NO` or `--ids 1,2`):
only the log entries about some recordings, by number, not a range
(docs/FORMAT.md "Scoped log export"). It checks that:

  1. checkpoint.txt is signed by a key of keys.txt, or of --key (as above);
  2. every line of entries.jsonl is a canonical log entry (v, seq, time,
     kind, data, prev), the lines in log order, none twice;
  3. every line's RFC 9162 inclusion proof (proofs.json "proofs", by entry
     number) leads to the checkpoint's root, and every proof has its line;
  4. every recording of the scope ("recordings") has its recording.ingested
     entry there, and the scope's case (if any) its case.created entry.

A scoped export proves that each of its entries is in the signed log,
unchanged and at its place; it cannot prove that the log holds no other
entry about those recordings (completeness): verify.py says so with its OK.

It prints one line per problem, then "OK" or the number of problems, and
exits 0 if everything holds, 1 otherwise (2: bad command line).

本脚本核对本光盘（或日志导出文件夹）：文件的 SHA-256、签名检查点、日志包含证明、
日志哈希链与目录标签。全部通过时输出 OK 并以 0 退出；否则逐行列出问题并以 1 退出。

dockd also imports this file (`dockd verify-disc`, `python -m
dockd.integrity.offline`), so it must stay a single module using only the
standard library and `cryptography`, and run on Python 3.8.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import hashlib
import io
import json
import os
import re
import struct
import sys
import unicodedata
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # Python 3.8 cannot subscript collections.abc.Callable at run time
    from collections.abc import Callable

    _Add = Callable[[str, str, str], None]  # (kind, where, detail)
    _Read = Callable[[str], bytes | None]  # a file of the folder, None if it cannot be read

FORMAT = "dockd-disc/1"

KINDS = (
    "bag_invalid",
    "file_changed",
    "file_missing",
    "file_extra",
    "manifest_changed",
    "tagmanifest_changed",
    "checkpoint_untrusted",
    "checkpoint_invalid",
    "proof_invalid",
    "entry_missing",
    "catalog_mismatch",
    "chain_broken",  # log export: lines missing, added or moved, or a `prev` that does not link
)

BAGIT_TXT = "bagit.txt"
BAG_INFO = "bag-info.txt"
MANIFEST = "manifest-sha256.txt"
TAGMANIFEST = "tagmanifest-sha256.txt"
CATALOG_JSON = "dockd/catalog.json"
CATALOG_CSV = "dockd/catalog.csv"
ENTRIES = "dockd/entries.jsonl"
PROOFS = "dockd/proofs.json"
CHECKPOINT = "dockd/checkpoint.txt"
KEYS = "dockd/keys.txt"
BAGIT_TEXT = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"

# A log export's files, at the top of its folder (beside this file as verify.py).
EXPORT_ENTRIES = "entries.jsonl"
EXPORT_PROOFS = "proofs.json"  # {"from", "to", "tree_size", "prev_of_first", "inclusion"}
EXPORT_CHECKPOINT = "checkpoint.txt"
EXPORT_KEYS = "keys.txt"
EXPORT_FILES = (EXPORT_ENTRIES, EXPORT_PROOFS, EXPORT_CHECKPOINT, EXPORT_KEYS)
# A scoped export's proofs.json: {"scope": {"case", "recordings"}, "tree_size", "proofs"}.
ENTRY_KEYS = ("data", "kind", "prev", "seq", "time", "v")  # a log entry's keys, sorted
GENESIS = "0" * 64  # the `prev` of log entry 1

# Columns of catalog.csv that come first, in this order; any other key follows, sorted.
CSV_FIRST = (
    "id",
    "bag_path",
    "sha256",
    "size",
    "unit",
    "officer",
    "device_serial",
    "device_number",
    "recorded_start",
    "recorded_end",
    "cause",
    "parties",
    "categories",
    "source_path",
)

_CHUNK = 4 << 20
_DASH = "\u2014 "
_MAX_SIGNATURES = 16
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class Problem(NamedTuple):
    kind: str  # one of KINDS
    where: str  # the file (bag-relative path) or record the problem is about
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.detail} [{self.kind}]"


class Found(NamedTuple):
    bag_path: str
    sha256: str  # as read from the disc now
    recording_id: int | None  # from catalog.json; None if the catalog does not name it


class Checkpoint(NamedTuple):
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...]


class Result(NamedTuple):
    problems: list[Problem]
    recordings: list[Found]
    info: dict[str, str]  # bag-info.txt (first value of each label)
    checkpoint: Checkpoint | None
    entries: int  # log entries whose inclusion proof verified
    span: tuple[int, int] | None = None  # a log export's first and last entry
    scope: dict[str, Any] | None = None  # a scoped export's scope (proofs.json "scope")


# -- RFC 9162 section 2.1 -----------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion_proof(
    index: int, size: int, leaf: bytes, proof: list[bytes]
) -> bytes | None:
    """The root `proof` implies for `leaf` at `index` (RFC 9162 2.1.3.2); None if malformed."""
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if len(p) != 32 or sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    return root_from_inclusion_proof(index, size, leaf, proof) == root


# -- canonical JSON (sorted keys, UTF-8, no spaces, no floats) ----------------------


def _reject(text: str) -> Any:
    raise ValueError(f"{text} is not allowed in canonical JSON")


def is_canonical(raw: bytes) -> bool:
    """True if `raw` is exactly the canonical encoding of the JSON value it holds."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_float=_reject, parse_constant=_reject)
        again = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return again.encode("utf-8") == raw
    except ValueError:  # JSONDecodeError, UnicodeDecodeError and UnicodeEncodeError too
        return False


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


# -- C2SP signed notes and tlog checkpoints ------------------------------------------


class NoteError(ValueError):
    """A checkpoint note that cannot be accepted; `untrusted`: no trusted key signed it."""

    def __init__(self, message: str, untrusted: bool = False) -> None:
        super().__init__(message)
        self.untrusted = untrusted


class Key(NamedTuple):
    name: str
    key_id: int
    public: bytes  # 32 bytes, RFC 8032
    text: str  # name+hexid+base64(0x01 || key)


def key_id(name: str, public: bytes) -> int:
    digest = hashlib.sha256(name.encode("utf-8") + b"\n\x01" + public).digest()
    return int(struct.unpack(">I", digest[:4])[0])


def parse_key(text: str) -> Key:
    """A verifier key `name+id+base64`; ValueError says what is wrong with it."""
    parts = text.strip().split("+", 2)  # base64 may itself contain '+'
    if len(parts) != 3:
        raise ValueError("verifier key must be <name>+<hex id>+<base64 key>")
    name, hex_id, blob = parts
    if not name or any(c.isspace() or c == "+" for c in name):
        raise ValueError(f"invalid key name {name!r}")
    try:
        raw = base64.b64decode(blob, validate=True)
        claimed = int(hex_id, 16)
    except (binascii.Error, ValueError):
        raise ValueError("verifier key has a malformed id or key") from None
    if len(hex_id) != 8 or len(raw) != 33 or raw[0] != 1:
        raise ValueError("verifier key is not an Ed25519 key of 32 bytes")
    if key_id(name, raw[1:]) != claimed:
        raise ValueError("verifier key id does not match its name and key")
    return Key(name, claimed, raw[1:], text.strip())


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("note text must not contain control characters")


def open_note(note: str, keys: list[Key]) -> str:
    """The text of `note` if a key of `keys` signed it; NoteError otherwise.

    Signatures by unknown keys are ignored; a failing signature by a known key
    rejects the note. Raises ImportError if `cryptography` is missing.
    """
    text, sep, sigs = note.rpartition("\n\n")
    if not sep:
        raise NoteError("note has no signature block")
    text += "\n"
    _check_note_text(text)
    lines = sigs.split("\n")
    if lines[-1] != "":
        raise NoteError("note must end with a newline")
    lines = lines[:-1]
    if not lines or len(lines) > _MAX_SIGNATURES:
        raise NoteError(f"note must carry 1 to {_MAX_SIGNATURES} signatures")
    known = {(k.name, k.key_id): k for k in keys}
    verified = 0
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
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(key.public).verify(raw[4:], text.encode("utf-8"))
        except (InvalidSignature, ValueError):
            raise NoteError(f"signature by {name} does not verify") from None
        verified += 1
    if not verified:
        raise NoteError("note is not signed by any trusted key", untrusted=True)
    return text


def parse_checkpoint(text: str) -> Checkpoint:
    """A C2SP tlog-checkpoint body; ValueError says what is wrong with it."""
    if not text.endswith("\n"):
        raise ValueError("checkpoint must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise ValueError("checkpoint needs origin, size and root hash lines")
    origin, size_text, root_text = lines[:3]
    extensions = tuple(lines[3:])
    if not origin:
        raise ValueError("checkpoint origin is empty")
    if not re.fullmatch(r"0|[1-9][0-9]*", size_text):
        raise ValueError(f"checkpoint size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise ValueError("checkpoint root hash is not base64") from None
    if len(root) != 32:
        raise ValueError("checkpoint root hash is not 32 bytes")
    if any(not line for line in extensions):
        raise ValueError("checkpoint has an empty extension line")
    return Checkpoint(origin, int(size_text), root, extensions)


# -- tag files the disc carries ---------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def catalog_csv(records: list[dict[str, Any]]) -> bytes:
    """catalog.csv for the objects of catalog.json: UTF-8 with a BOM (for Excel), CRLF.

    Lists and objects are written as JSON text, null as an empty cell.
    """
    keys = {k for r in records for k in r}
    header = [k for k in CSV_FIRST if k in keys] + sorted(keys - set(CSV_FIRST))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for record in records:
        writer.writerow([_cell(record.get(k)) for k in header])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def catalog_json(records: list[dict[str, Any]]) -> bytes:
    """catalog.json: a JSON array of one object per recording, readable (indented, UTF-8)."""
    text = json.dumps(records, sort_keys=True, indent=1, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


# -- reading the bag -----------------------------------------------------------------


def sha256_file(path: str, progress: Callable[[int], None] | None = None) -> str:
    """The file's SHA-256; `progress` (dockd's bar) hears each block's length."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(_CHUNK)
            if not block:
                return digest.hexdigest()
            digest.update(block)
            if progress is not None:
                progress(len(block))


def _nfc(path: str) -> str:
    return unicodedata.normalize("NFC", path)


def _local(root: str, rel: str) -> str:
    return os.path.join(root, *rel.split("/"))


def _walk(root: str, top: str) -> dict[str, str]:
    """Files under `root/top` (or all of root if top is ''): NFC path -> path as found."""
    found: dict[str, str] = {}
    start = _local(root, top) if top else root
    for folder, dirs, files in os.walk(start):
        dirs.sort()
        rel_dir = os.path.relpath(folder, root).replace(os.sep, "/")
        for name in sorted(files):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            found[_nfc(rel)] = rel
    return found


def _read_tag_file(data: bytes) -> list[tuple[str, str]]:
    """`Label: value` lines with continuation lines (RFC 8493 2.2.2); ValueError if malformed."""
    text = data.decode("utf-8")
    items: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line[0] in " \t":
            if not items:
                raise ValueError(f"line {number} continues nothing")
            label, value = items[-1]
            items[-1] = (label, value + " " + line.strip())
            continue
        label, sep, value = line.partition(":")
        if not sep or not label.strip():
            raise ValueError(f"line {number} is not 'Label: value'")
        items.append((label.strip(), value.strip()))
    return items


_PERCENT = {"%0a": "\n", "%0d": "\r", "%25": "%"}


def _decode_path(text: str) -> str:
    return re.sub(r"%(0[aAdD]|25)", lambda m: _PERCENT[m.group(0).lower()], text)


def _safe_rel(path: str) -> bool:
    parts = path.split("/")
    return (
        bool(path)
        and not path.startswith("/")
        and "\\" not in path
        and ":" not in parts[0]
        and all(p not in ("", ".", "..") for p in parts)
    )


class _Manifest(NamedTuple):
    hashes: dict[str, str]  # NFC path -> lowercase hex
    problems: list[tuple[str, str]]  # (where, detail)


def _read_manifest(data: bytes, name: str, payload: bool) -> _Manifest:
    hashes: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    if data.startswith(b"\xef\xbb\xbf"):
        problems.append((name, "starts with a byte-order mark (BagIt forbids it)"))
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _Manifest({}, [(name, f"is not UTF-8 ({exc.reason} at byte {exc.start})")])
    for number, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        fields = line.split(None, 1)
        if len(fields) != 2 or not _HEX64.fullmatch(fields[0]):
            problems.append((f"{name} line {number}", "is not '<64 hex digits> <path>'"))
            continue
        path = _nfc(_decode_path(fields[1].lstrip("*")))
        inside = path.startswith("data/")
        if not _safe_rel(path) or inside != payload:
            where = "a data/ path" if payload else "a path outside data/"
            problems.append((f"{name} line {number}", f"path {path!r} is not {where}"))
            continue
        if path in hashes:
            problems.append((f"{name} line {number}", f"lists {path} a second time"))
            continue
        hashes[path] = fields[0].lower()
    return _Manifest(hashes, problems)


# -- the check ---------------------------------------------------------------------------


_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def _instant(text: Any) -> datetime | None:
    match = _TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    y, mo, d, h, mi, s = (int(g) for g in match.groups()[:6])
    micro = int(((match.group(7) or "") + "000000")[:6])
    zone = match.group(8)
    offset = timedelta(0)
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        return datetime(y, mo, d, h, mi, s, micro, tzinfo=timezone(offset))
    except ValueError:
        return None


# catalog.json key -> recording.ingested data key, for facts that never change.
_FACTS = (
    ("sha256", "sha256"),
    ("size", "size"),
    ("device_serial", "device_serial"),
    ("recorded_start", "recorded_start"),
    ("recorded_end", "recorded_end"),
    ("source_path", "source_path"),
    ("session_id", "session"),
    ("profile", "profile"),
    ("time_source", "time_source"),
    ("name_officer", "name_officer"),
    ("name_device", "name_device"),
)
_UNKNOWN = object()


class _Labels:
    """A recording's labels as the log entries on the disc state them, each with its entry."""

    def __init__(self, seq: int, data: dict[str, Any]) -> None:
        self.data = data
        self.fields: dict[str, tuple[Any, int]] = {
            "officer": (data.get("officer"), seq),
            "unit": (data.get("unit"), seq),
            "device_number": (data.get("device_number"), seq),
            "cause": (None, seq),
            "parties": ([], seq),
            "categories": ([], seq),
            "notes": ([], seq),
        }

    def assigned(self, seq: int, data: dict[str, Any]) -> None:
        """A `device.assigned` entry: the newest assignment covering the start wins."""
        if data.get("serial") != self.data.get("device_serial"):
            return
        start = _instant(self.data.get("recorded_start"))
        begin = _instant(data.get("valid_from"))
        end = _instant(data.get("valid_to")) if data.get("valid_to") is not None else None
        if start is None or begin is None or (data.get("valid_to") is not None and end is None):
            for name in ("officer", "unit", "device_number"):
                self.fields[name] = (_UNKNOWN, seq)
            return
        if begin <= start and (end is None or start < end):
            device = data.get("device_number") or self.data.get("name_device")
            self.fields["officer"] = (data.get("officer"), seq)
            self.fields["unit"] = (data.get("unit"), seq)
            self.fields["device_number"] = (device, seq)

    def tagged(self, seq: int, data: dict[str, Any]) -> None:
        if data.get("cause") is not None:
            self.fields["cause"] = (data["cause"], seq)
        parties = set(self.fields["parties"][0]) | set(data.get("parties_added") or [])
        categories = (
            set(self.fields["categories"][0]) | set(data.get("categories_added") or [])
        ) - set(data.get("categories_removed") or [])
        self.fields["parties"] = (sorted(parties), seq)
        self.fields["categories"] = (sorted(categories), seq)
        if data.get("note") is not None:
            notes = [*self.fields["notes"][0], [data["note"], seq]]
            self.fields["notes"] = (notes, seq)


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# -- the signed log: shared by the disc and the log export ----------------------------


class _Line(NamedTuple):
    """A line of an entries file that is a log entry (has a positive integer `seq`)."""

    number: int  # 1-based line number in the file
    seq: int
    raw: bytes  # the line's bytes, as hashed into the log
    entry: dict[str, Any]
    canonical: bool


def _trusted_keys(read: _Read, keys_file: str, keys: list[str] | None, add: _Add) -> list[Key]:
    """The --key keys if any were given, else those of `keys_file`."""
    key_list: list[Key] = []
    if keys:
        sources = [(f"--key {i + 1}", text) for i, text in enumerate(keys)]
    else:
        raw_keys = read(keys_file)
        if raw_keys is None:
            add("checkpoint_untrusted", keys_file, "is missing and no --key was given")
            raw_keys = b""
        lines = raw_keys.decode("utf-8", "replace").splitlines()
        sources = [(f"{keys_file} line {i + 1}", t) for i, t in enumerate(lines) if t.strip()]
    for where, text in sources:
        try:
            key_list.append(parse_key(text))
        except ValueError as exc:
            add("checkpoint_untrusted", where, f"is not a usable verifier key: {exc}")
    return key_list


def _signed_checkpoint(
    read: _Read, name: str, keys_file: str, key_list: list[Key], pinned: bool, add: _Add
) -> Checkpoint | None:
    """The checkpoint in the note `name`, its signature checked against `key_list`.

    It is returned even when the signature fails, so that the proofs are still
    checked against it: without `cryptography` the hashes are still worth knowing.
    """
    raw_note = read(name)
    if raw_note is None:
        add("checkpoint_invalid", name, "is missing")
        return None
    checkpoint: Checkpoint | None = None
    note = raw_note.decode("utf-8", "replace")
    try:
        checkpoint = parse_checkpoint(note.rpartition("\n\n")[0] + "\n")
    except ValueError as exc:
        add("checkpoint_invalid", name, f"is not a tlog checkpoint: {exc}")
    try:
        open_note(note, key_list)
    except ImportError:
        add(
            "checkpoint_untrusted",
            name,
            "signature NOT checked: the Python package 'cryptography' is missing "
            "(pip install cryptography)",
        )
    except NoteError as exc:
        who = "the --key keys" if pinned else keys_file
        if exc.untrusted:
            add("checkpoint_untrusted", name, f"is not signed by any key of {who}")
        else:
            add("checkpoint_invalid", name, str(exc))
    return checkpoint


def _reader(root: str) -> _Read:
    def read(rel: str) -> bytes | None:
        try:
            with open(_local(root, rel), "rb") as f:
                return f.read()
        except OSError:
            return None

    return read


def _check_tree_size(tree_size: Any, checkpoint: Checkpoint | None, name: str, add: _Add) -> None:
    if checkpoint is not None and tree_size != checkpoint.size:
        add(
            "proof_invalid",
            name,
            f"proofs are for a tree of size {tree_size}, the checkpoint's is {checkpoint.size}",
        )


def _split_lines(raw: bytes) -> list[bytes]:
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _check_entries(
    raw_entries: bytes | None,
    name: str,
    proofs_name: str,
    checkpoint: Checkpoint | None,
    proof_of: Callable[[int], Any] | None,
    add: _Add,
) -> tuple[list[_Line], int]:
    """The log entries of the file `name`, and how many are proven in `checkpoint`'s tree.

    `proof_of(seq)` is entry seq's inclusion proof as stored (a list of base64
    hashes); it may raise KeyError, IndexError or TypeError if there is none.
    None: the proofs could not be read (already reported), so none is checked.
    """
    if raw_entries is None:
        add("entry_missing", name, "is missing")
        raw_entries = b""
    lines_b = _split_lines(raw_entries)
    found: list[_Line] = []
    seen: set[int] = set()
    proven = 0
    for number, raw in enumerate(lines_b, 1):
        where = f"{name} line {number}"
        try:
            entry = json.loads(raw.decode("utf-8"))
            seq = entry["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
                raise ValueError("no positive 'seq'")
        except (ValueError, KeyError, TypeError) as exc:
            add("proof_invalid", where, f"is not a log entry: {exc}")
            continue
        where = f"{where} (log entry {seq})"
        if seq in seen:
            add("proof_invalid", where, "appears a second time")
            continue
        seen.add(seq)
        canonical = is_canonical(raw)
        found.append(_Line(number, seq, raw, entry, canonical))
        if not canonical:
            add("proof_invalid", where, "is not canonical JSON: its bytes are not as logged")
        if checkpoint is None or proof_of is None:
            continue
        if seq > checkpoint.size:
            add("proof_invalid", where, f"is beyond the checkpoint's size {checkpoint.size}")
            continue
        try:
            path = [base64.b64decode(h, validate=True) for h in proof_of(seq)]
        except (KeyError, IndexError, TypeError, ValueError):
            add("proof_invalid", where, f"has no usable inclusion proof in {proofs_name}")
            continue
        if verify_inclusion(seq - 1, checkpoint.size, leaf_hash(raw), path, checkpoint.root):
            proven += 1
        else:
            add(
                "proof_invalid",
                where,
                "is not included in the signed log (changed, moved or forged)",
            )
    return found, proven


def check_bag(
    root: str, keys: list[str] | None = None, progress: Callable[[int], None] | None = None
) -> Result:
    """Every problem with the bag at `root`; `keys` (verifier key texts) replace keys.txt.

    `progress` hears of the payload's bytes as they are hashed.
    """
    root = os.fspath(root)
    problems: list[Problem] = []

    def add(kind: str, where: str, detail: str) -> None:
        problems.append(Problem(kind, where, detail))

    read = _reader(root)
    if not os.path.isdir(root):
        add("bag_invalid", root, "is not a folder")
        return Result(problems, [], {}, None, 0)

    # 1. bagit.txt, bag-info.txt
    bagit = read(BAGIT_TXT)
    if bagit is None:
        add("bag_invalid", BAGIT_TXT, "is missing: this folder is not a BagIt bag")
    elif bagit != BAGIT_TEXT.encode():
        try:
            declared = dict(_read_tag_file(bagit))
        except ValueError as exc:
            declared = {"?": str(exc)}
        if (
            declared.get("BagIt-Version") != "1.0"
            or (declared.get("Tag-File-Character-Encoding", "").upper() != "UTF-8")
            or bagit.startswith(b"\xef\xbb\xbf")
        ):
            add("bag_invalid", BAGIT_TXT, f"does not declare BagIt 1.0 in UTF-8: {bagit[:120]!r}")
    info: dict[str, str] = {}
    raw_info = read(BAG_INFO)
    if raw_info is None:
        add("bag_invalid", BAG_INFO, "is missing")
    else:
        try:
            for label, value in _read_tag_file(raw_info):
                info.setdefault(label, value)
        except ValueError as exc:
            add("bag_invalid", BAG_INFO, f"is malformed: {exc}")

    # 2. payload: what is on the disc, what the manifest says
    on_disk = _walk(root, "data") if os.path.isdir(_local(root, "data")) else {}
    if not os.path.isdir(_local(root, "data")):
        add("bag_invalid", "data", "the payload folder data/ is missing")
    raw_manifest = read(MANIFEST)
    manifest = _Manifest({}, [])
    if raw_manifest is None:
        add("bag_invalid", MANIFEST, "is missing")
    else:
        manifest = _read_manifest(raw_manifest, MANIFEST, payload=True)
        for where, detail in manifest.problems:
            add("manifest_changed", where, detail)
    actual: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for norm, rel in on_disk.items():
        if os.path.islink(_local(root, rel)):
            add("file_changed", norm, "is a symbolic link, not a file of the disc")
            continue
        try:
            actual[norm] = sha256_file(_local(root, rel), progress)
            sizes[norm] = os.path.getsize(_local(root, rel))
        except OSError as exc:
            add("file_changed", norm, f"cannot be read: {exc.strerror or exc}")
    oxum = info.get("Payload-Oxum")
    if oxum is not None:
        octets, _, count = oxum.partition(".")
        found = f"{sum(sizes.values())}.{len(on_disk)}"
        if not (re.fullmatch(r"[0-9]+", octets) and re.fullmatch(r"[0-9]+", count)):
            add("bag_invalid", BAG_INFO, f"Payload-Oxum {oxum!r} is malformed")
        elif f"{int(octets)}.{int(count)}" != found:
            add(
                "bag_invalid",
                BAG_INFO,
                f"Payload-Oxum says {octets} bytes in {count} files, data/ holds "
                f"{sum(sizes.values())} bytes in {len(on_disk)} files",
            )

    # 3. tag files and the tag manifest
    tag_files = {
        n: r
        for n, r in _walk(root, "").items()
        if not n.startswith("data/") and not re.fullmatch(r"tagmanifest-[^/]+\.txt", n)
    }
    raw_tagmanifest = read(TAGMANIFEST)
    if raw_tagmanifest is None:
        add("tagmanifest_changed", TAGMANIFEST, "is missing: the tag files cannot be checked")
    else:
        tagmanifest = _read_manifest(raw_tagmanifest, TAGMANIFEST, payload=False)
        for where, detail in tagmanifest.problems:
            add("tagmanifest_changed", where, detail)
        for norm in sorted(set(tagmanifest.hashes) | set(tag_files)):
            kind = "manifest_changed" if norm == MANIFEST else "tagmanifest_changed"
            listed = tagmanifest.hashes.get(norm)
            if norm not in tag_files:
                add(kind, norm, f"is listed in {TAGMANIFEST} but not on the disc")
                continue
            if listed is None:
                add("tagmanifest_changed", norm, f"is on the disc but not listed in {TAGMANIFEST}")
                continue
            try:
                digest = sha256_file(_local(root, tag_files[norm]))
            except OSError as exc:
                add(kind, norm, f"cannot be read: {exc.strerror or exc}")
                continue
            if digest != listed:
                add(kind, norm, f"SHA-256 is {digest}, {TAGMANIFEST} says {listed}")

    # 4. keys and checkpoint
    key_list = _trusted_keys(read, KEYS, keys, add)
    checkpoint = _signed_checkpoint(read, CHECKPOINT, KEYS, key_list, bool(keys), add)
    origin = info.get("Source-Organization")
    if checkpoint is not None and origin is not None and checkpoint.origin != origin:
        add(
            "checkpoint_invalid",
            CHECKPOINT,
            f"is of log {checkpoint.origin!r}, bag-info.txt names log {origin!r}",
        )

    # 5. entries and inclusion proofs
    proofs: dict[str, Any] = {}
    raw_proofs = read(PROOFS)
    try:
        loaded = json.loads((raw_proofs or b"").decode("utf-8"))
        if not isinstance(loaded, dict) or not isinstance(loaded.get("proofs"), dict):
            raise ValueError("no 'proofs' object")
        proofs = loaded
    except ValueError as exc:
        add("proof_invalid", PROOFS, f"is missing or malformed: {exc}")
    if proofs:
        _check_tree_size(proofs.get("tree_size"), checkpoint, PROOFS, add)
    lines, proven = _check_entries(
        read(ENTRIES),
        ENTRIES,
        PROOFS,
        checkpoint,
        (lambda seq: proofs["proofs"][str(seq)]) if proofs else None,
        add,
    )
    # Compared with the catalog and the files below whether or not its proof holds:
    # a proof problem is reported on its own, an entry is missing only if absent.
    parsed = [(line.seq, line.entry) for line in lines if line.canonical]

    # 6. catalog.json and catalog.csv against the entries
    records: list[dict[str, Any]] = []
    raw_catalog = read(CATALOG_JSON)
    try:
        loaded_catalog = json.loads((raw_catalog or b"").decode("utf-8"))
        if not isinstance(loaded_catalog, list) or not all(
            isinstance(r, dict) for r in loaded_catalog
        ):
            raise ValueError("not a list of objects")
        records = loaded_catalog
    except ValueError as exc:
        add("catalog_mismatch", CATALOG_JSON, f"is missing or malformed: {exc}")
    raw_csv = read(CATALOG_CSV)
    if raw_csv is None:
        add("catalog_mismatch", CATALOG_CSV, "is missing")
    elif records and raw_csv != catalog_csv(records):
        expected = catalog_csv(records).decode("utf-8", "replace").splitlines()
        got = raw_csv.decode("utf-8", "replace").splitlines()
        common = min(len(expected), len(got))
        row = next((i for i in range(common) if expected[i] != got[i]), common)
        add("catalog_mismatch", CATALOG_CSV, f"differs from {CATALOG_JSON} at line {row + 1}")

    labels: dict[int, _Labels] = {}
    ingested_at: dict[int, int] = {}
    for seq, entry in sorted(parsed, key=lambda item: item[0]):
        data = entry.get("data")
        if not isinstance(data, dict):
            continue
        entry_kind = entry.get("kind")
        if entry_kind == "recording.ingested" and isinstance(data.get("recording"), int):
            labels[data["recording"]] = _Labels(seq, data)
            ingested_at[data["recording"]] = seq
        elif entry_kind == "device.assigned":
            for rec in labels.values():
                rec.assigned(seq, data)
        elif entry_kind == "recording.tagged":
            for rid in data.get("recordings") or []:
                if rid in labels:
                    labels[rid].tagged(seq, data)

    by_path: dict[str, dict[str, Any]] = {}
    by_id: dict[int, dict[str, Any]] = {}
    for index, record in enumerate(records):
        rid, bag_path = record.get("id"), record.get("bag_path")
        where = f"{CATALOG_JSON} object {index + 1}"
        if not isinstance(rid, int) or not isinstance(bag_path, str):
            add("catalog_mismatch", where, "has no integer 'id' and string 'bag_path'")
            continue
        bag_path = _nfc(bag_path)
        if bag_path in by_path or rid in by_id:
            add("catalog_mismatch", where, f"repeats recording {rid} or path {bag_path}")
            continue
        by_path[bag_path], by_id[rid] = record, record
        where = f"{CATALOG_JSON} recording {rid}"
        if bag_path not in on_disk and bag_path not in manifest.hashes:
            add(
                "file_missing",
                bag_path,
                f"{CATALOG_JSON} lists recording {rid} here, not on the disc",
            )
        state = labels.get(rid)
        if state is None:
            add(
                "entry_missing",
                bag_path,
                f"no recording.ingested entry for recording {rid} in {ENTRIES}",
            )
            continue
        seq = ingested_at[rid]
        for cat_key, data_key in _FACTS:
            if (
                cat_key in record
                and data_key in state.data
                and record[cat_key] != state.data[data_key]
            ):
                add(
                    "catalog_mismatch",
                    where,
                    f"{cat_key} is {_show(record[cat_key])}, log entry {seq} says "
                    f"{_show(state.data[data_key])}",
                )
        for name, (value, said) in state.fields.items():
            if name not in record or value is _UNKNOWN:
                continue
            mine: Any = record[name]
            if name in ("parties", "categories") and isinstance(mine, list):
                mine = sorted(mine)
            if name == "notes" and isinstance(mine, list):
                mine = [[n.get("text"), n.get("entry")] if isinstance(n, dict) else n for n in mine]
            if mine != value:
                add(
                    "catalog_mismatch",
                    where,
                    f"{name} is {_show(record[name])}, the log entries say {_show(value)} "
                    f"(entry {said})",
                )
    for rid in sorted(set(labels) - set(by_id)):
        add(
            "file_missing",
            f"{ENTRIES} log entry {ingested_at[rid]}",
            f"records recording {rid} ({labels[rid].data.get('sha256')}), which {CATALOG_JSON} "
            "does not list and the disc does not hold",
        )

    # 7. every data/ file: the manifest, and the hash its log entry recorded
    recordings: list[Found] = []
    for norm in sorted(set(manifest.hashes) | set(on_disk)):
        listed = manifest.hashes.get(norm)
        if norm not in on_disk:
            add("file_missing", norm, f"is listed in {MANIFEST} but not on the disc")
            continue
        if norm not in actual:
            continue  # unreadable, reported above
        digest = actual[norm]
        described = by_path.get(norm)
        file_rid = described.get("id") if described is not None else None
        recordings.append(Found(norm, digest, file_rid if isinstance(file_rid, int) else None))
        if listed is None:
            add("file_extra", norm, f"is on the disc but not listed in {MANIFEST}")
        elif described is None:
            add("catalog_mismatch", norm, f"is not described in {CATALOG_JSON}")
        state = labels.get(file_rid) if isinstance(file_rid, int) else None
        logged = state.data.get("sha256") if state is not None else None
        logged_seq = ingested_at.get(file_rid) if isinstance(file_rid, int) else None
        if listed is not None and digest != listed:
            if logged == digest:
                add(
                    "manifest_changed",
                    MANIFEST,
                    f"the line for {norm} says {listed}, the file and log entry {logged_seq} "
                    f"say {digest}",
                )
            else:
                also = f", log entry {logged_seq} says {logged}" if logged else ""
                add("file_changed", norm, f"SHA-256 is {digest}, {MANIFEST} says {listed}{also}")
        elif logged is not None and digest != logged:
            add(
                "file_changed",
                norm,
                f"SHA-256 is {digest} (as {MANIFEST} says), but log entry {logged_seq} recorded "
                f"{logged}: the file was replaced and the manifest rewritten",
            )
    return Result(problems, recordings, info, checkpoint, proven)


def is_log_export(root: str) -> bool:
    """True for a folder `Service.export_log` wrote: no bagit.txt, one of its files at least.

    One file is enough, so that a log export with files deleted is still checked
    as one and its missing files are named.
    """
    return not os.path.exists(_local(root, BAGIT_TXT)) and any(
        os.path.exists(_local(root, name)) for name in EXPORT_FILES
    )


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_export(root: str, keys: list[str] | None = None) -> Result:
    """Every problem with the log export at `root`; `keys` (verifier key texts) replace keys.txt."""
    root = os.fspath(root)
    problems: list[Problem] = []

    def add(kind: str, where: str, detail: str) -> None:
        problems.append(Problem(kind, where, detail))

    read = _reader(root)
    if not os.path.isdir(root):
        add("entry_missing", root, "is not a folder")
        return Result(problems, [], {}, None, 0)

    # 1. keys and checkpoint
    key_list = _trusted_keys(read, EXPORT_KEYS, keys, add)
    checkpoint = _signed_checkpoint(read, EXPORT_CHECKPOINT, EXPORT_KEYS, key_list, bool(keys), add)

    # 2. entries and inclusion proofs; proofs.json holds one per line, from entry "from" on
    proofs: dict[str, Any] = {}
    try:
        loaded = json.loads((read(EXPORT_PROOFS) or b"").decode("utf-8"))
        if isinstance(loaded, dict) and "scope" in loaded:
            return _check_scoped(read, loaded, checkpoint, problems)
        if not isinstance(loaded, dict) or not isinstance(loaded.get("inclusion"), list):
            raise ValueError("no 'inclusion' list")
        if not _positive(loaded.get("from")):
            raise ValueError("no positive 'from'")
        proofs = loaded
    except ValueError as exc:
        add("proof_invalid", EXPORT_PROOFS, f"is missing or malformed: {exc}")
    inclusion: list[Any] = proofs.get("inclusion", [])
    first: int = proofs.get("from", 1)

    def proof_of(seq: int) -> Any:
        # By the number the entry claims, not by its line: a moved line is reported as
        # out of order below, not as a forgery.
        if not 0 <= seq - first < len(inclusion):
            raise KeyError(seq)
        return inclusion[seq - first]

    if proofs:
        _check_tree_size(proofs.get("tree_size"), checkpoint, EXPORT_PROOFS, add)
    raw_entries = read(EXPORT_ENTRIES)
    lines, proven = _check_entries(
        raw_entries,
        EXPORT_ENTRIES,
        EXPORT_PROOFS,
        checkpoint,
        proof_of if proofs else None,
        add,
    )

    # 3. the lines are entries first..last, in order, each chained to the one before
    seqs = [line.seq for line in lines]
    last: Any
    if not proofs:  # the range is unknown (reported above): the one the lines hold
        first, last = (min(seqs), max(seqs)) if seqs else (1, 0)
    else:
        last = proofs.get("to")
        if not _positive(last) or last < first:
            add("proof_invalid", EXPORT_PROOFS, f"'to' {last!r} is not an entry from {first} on")
            last = max([first, *seqs])
        elif len(inclusion) != last - first + 1:
            add(
                "proof_invalid",
                EXPORT_PROOFS,
                f"holds {len(inclusion)} inclusion proofs for entries {first} to {last}",
            )
    for start, end in _gaps(first, last, seqs):
        what = f"log entry {start} is" if start == end else f"log entries {start} to {end} are"
        add("entry_missing", EXPORT_ENTRIES, f"{what} missing")
    before: _Line | None = None
    for line in lines:
        where = f"{EXPORT_ENTRIES} line {line.number} (log entry {line.seq})"
        if not first <= line.seq <= last:
            add("chain_broken", where, f"is not one of entries {first} to {last}, as named")
        if before is not None and line.seq < before.seq:
            add(
                "chain_broken",
                where,
                f"comes after log entry {before.seq} (line {before.number}): out of order",
            )
        # A link is checked where the numbers say it must hold; a gap or a move is
        # reported above once, not again as the broken links around it.
        want: Any = None
        if before is None and line.seq == first == 1:
            want, said = GENESIS, "64 zeros (log entry 1 has none before it)"
        elif before is None and line.seq == first:
            want, said = proofs.get("prev_of_first"), f"the prev_of_first of {EXPORT_PROOFS}"
        elif before is not None and line.seq == before.seq + 1:
            want = hashlib.sha256(before.raw).hexdigest()
            said = f"the SHA-256 of line {before.number} (log entry {before.seq})"
        if want is not None and line.entry.get("prev") != want:
            add("chain_broken", where, f"its prev is not {said}")
        before = line
    return Result(problems, [], {}, checkpoint, proven, (first, last))


def _scope_of(loaded: dict[str, Any], add: _Add) -> dict[str, Any]:
    """proofs.json's scope: {"case": str or None, "recordings": [positive ints]}."""
    scope = loaded.get("scope")
    case = scope.get("case") if isinstance(scope, dict) else None
    ids = scope.get("recordings") if isinstance(scope, dict) else None
    if (
        not isinstance(scope, dict)
        or not (case is None or isinstance(case, str))
        or not isinstance(ids, list)
        or not all(_positive(i) for i in ids)
    ):
        add(
            "proof_invalid",
            EXPORT_PROOFS,
            'its \'scope\' is not {"case": null or a case number, "recordings": [ids]}',
        )
        return {"case": case if isinstance(case, str) else None, "recordings": []}
    return {"case": case, "recordings": ids}


def _check_scoped(
    read: _Read, loaded: dict[str, Any], checkpoint: Checkpoint | None, problems: list[Problem]
) -> Result:
    """The rest of a scoped export's check, once its keys and checkpoint are checked."""

    def add(kind: str, where: str, detail: str) -> None:
        problems.append(Problem(kind, where, detail))

    scope = _scope_of(loaded, add)
    proofs = loaded.get("proofs")
    if not isinstance(proofs, dict):
        add("proof_invalid", EXPORT_PROOFS, "is malformed: no 'proofs' object")
    _check_tree_size(loaded.get("tree_size"), checkpoint, EXPORT_PROOFS, add)
    table: dict[str, Any] = proofs if isinstance(proofs, dict) else {}
    lines, proven = _check_entries(
        read(EXPORT_ENTRIES),
        EXPORT_ENTRIES,
        EXPORT_PROOFS,
        checkpoint,
        (lambda seq: table[str(seq)]) if isinstance(proofs, dict) else None,
        add,
    )
    before: _Line | None = None
    ingested: set[Any] = set()
    created: set[Any] = set()
    for line in lines:
        where = f"{EXPORT_ENTRIES} line {line.number} (log entry {line.seq})"
        if before is not None and line.seq < before.seq:
            add(
                "chain_broken",
                where,
                f"comes after log entry {before.seq} (line {before.number}): out of order",
            )
        before = line
        data = line.entry.get("data")
        if tuple(sorted(line.entry)) != ENTRY_KEYS or not isinstance(data, dict):
            add("proof_invalid", where, f"is not a log entry: it must have the keys {ENTRY_KEYS}")
            continue
        if line.entry.get("kind") == "recording.ingested":
            ingested.add(data.get("recording"))
        elif line.entry.get("kind") == "case.created":
            created.add(data.get("case", data.get("no")))
    present = {line.seq for line in lines}
    for key in sorted(table, key=lambda k: (len(k), k)):
        if not re.fullmatch(r"[1-9][0-9]*", key):
            add("proof_invalid", EXPORT_PROOFS, f"holds a proof for {key!r}, not an entry number")
        elif int(key) not in present:
            add(
                "entry_missing",
                EXPORT_ENTRIES,
                f"log entry {key} is missing ({EXPORT_PROOFS} holds its inclusion proof)",
            )
    for rid in scope["recordings"]:
        if rid not in ingested:
            add(
                "entry_missing",
                EXPORT_ENTRIES,
                f"has no recording.ingested entry for recording {rid}, which the scope names",
            )
    if scope["case"] is not None and scope["case"] not in created:
        add(
            "entry_missing",
            EXPORT_ENTRIES,
            f"has no case.created entry for case {scope['case']}, which the scope names",
        )
    return Result(problems, [], {}, checkpoint, proven, None, scope)


def _gaps(first: int, last: int, present: list[int]) -> list[tuple[int, int]]:
    """The runs (from, to) of first..last that are not in `present`.

    Walks `present`, not the range: "to" in proofs.json may be any number.
    """
    gaps: list[tuple[int, int]] = []
    expect = first
    for n in sorted(n for n in set(present) if first <= n <= last):
        if n > expect:
            gaps.append((expect, n - 1))
        expect = n + 1
    if expect <= last:
        gaps.append((expect, last))
    return gaps


def check(root: str, keys: list[str] | None = None) -> Result:
    """A log export's check for a log export, the disc's for any other folder."""
    return check_export(root, keys) if is_log_export(root) else check_bag(root, keys)


def source() -> bytes:
    """This file: what dockd copies, unchanged, as verify.py onto discs and into log exports."""
    with open(__file__, "rb") as f:
        return f.read()


def main(
    argv: list[str] | None = None,
    prog: str = "verify.py",
    description: str | None = None,
    folder_required: bool = False,
) -> int:
    """The command line of verify.py, and (with another `prog`) of dockd's wrappers."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description or __doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = "the disc root or log export folder"
    if folder_required:
        parser.add_argument("folder", metavar="FOLDER", help=what)
    else:
        here = os.path.dirname(os.path.abspath(__file__))
        parser.add_argument(
            "folder",
            metavar="FOLDER",
            nargs="?",
            default=here,
            help=f"{what} (default: %(default)s)",
        )
    parser.add_argument(
        "--key", action="append", help="trusted verifier key NAME+ID+KEY (repeatable)"
    )
    args = parser.parse_args(argv)
    for text in args.key or []:
        try:
            parse_key(text)
        except ValueError as exc:
            parser.error(f"--key {text!r}: {exc}")
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="replace")  # a console that cannot show every character
    result = check(args.folder, args.key)
    for problem in result.problems:
        print(problem)
    if result.problems:
        count = len(result.problems)
        print(f"{count} problem{'s' if count != 1 else ''} / 发现 {count} 个问题")
        return 1
    cp = result.checkpoint
    size = cp.size if cp is not None else 0
    if result.scope is not None:
        case, ids = result.scope["case"], result.scope["recordings"]
        about = f"case {case}" if case is not None else "recordings " + ", ".join(map(str, ids))
        print(
            f"OK / 通过: the {result.entries} log entries of this scoped export (about {about}) "
            f"are in the signed log of {size} entries. A scoped export proves that these "
            "entries are in the log, not that the log holds no other entries about these "
            "recordings. / 分范围导出：仅证明以上记录均在签名日志中，"
            "不能证明日志中没有关于这些录像的其他记录。"
        )
        return 0
    if result.span is not None:
        print(
            f"OK / 通过: log entries {result.span[0]} to {result.span[1]} are in the signed "
            f"log of {size} entries, each chained to the one before"
        )
        return 0
    print(
        f"OK / 通过: {len(result.recordings)} files match their manifest and log entries; "
        f"{result.entries} log entries are in the signed log of {size} entries"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
