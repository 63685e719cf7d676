#!/usr/bin/env python3
"""verify.py: check an evidence disc written by dockd (a BagIt 1.0 bag).

    python3 verify.py [BAG_DIR] [--key NAME+ID+KEY ...]

BAG_DIR defaults to the folder this file is in (the disc root). Needs only
Python 3.8 or newer and, to check the signature, the `cryptography`
package (`pip install cryptography`). It checks that:

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

It prints one line per problem, then "OK" or the number of problems, and
exits 0 if everything holds, 1 otherwise (2: bad command line).

本脚本核对本光盘：文件的 SHA-256、签名检查点、日志包含证明与目录标签。
全部通过时输出 OK 并以 0 退出；否则逐行列出问题并以 1 退出。

This file is also imported by dockd (`dockd verify-disc`), so it must stay
a single module using only the standard library and `cryptography`.
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
from typing import Any, NamedTuple

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


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(_CHUNK)
            if not block:
                return digest.hexdigest()
            digest.update(block)


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


def check_bag(root: str, keys: list[str] | None = None) -> Result:
    """Every problem with the bag at `root`; `keys` (verifier key texts) replace keys.txt."""
    root = os.fspath(root)
    problems: list[Problem] = []

    def add(kind: str, where: str, detail: str) -> None:
        problems.append(Problem(kind, where, detail))

    def read(rel: str) -> bytes | None:
        try:
            with open(_local(root, rel), "rb") as f:
                return f.read()
        except OSError:
            return None

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
            actual[norm] = sha256_file(_local(root, rel))
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
    key_list: list[Key] = []
    if keys:
        sources = [(f"--key {i + 1}", text) for i, text in enumerate(keys)]
    else:
        raw_keys = read(KEYS)
        if raw_keys is None:
            add("checkpoint_untrusted", KEYS, "is missing and no --key was given")
            raw_keys = b""
        lines = raw_keys.decode("utf-8", "replace").splitlines()
        sources = [(f"{KEYS} line {i + 1}", t) for i, t in enumerate(lines) if t.strip()]
    for where, text in sources:
        try:
            key_list.append(parse_key(text))
        except ValueError as exc:
            add("checkpoint_untrusted", where, f"is not a usable verifier key: {exc}")
    checkpoint: Checkpoint | None = None
    raw_note = read(CHECKPOINT)
    if raw_note is None:
        add("checkpoint_invalid", CHECKPOINT, "is missing")
    else:
        note = raw_note.decode("utf-8", "replace")
        try:
            checkpoint = parse_checkpoint(note.rpartition("\n\n")[0] + "\n")
        except ValueError as exc:
            add("checkpoint_invalid", CHECKPOINT, f"is not a tlog checkpoint: {exc}")
        try:
            open_note(note, key_list)
        except ImportError:
            add(
                "checkpoint_untrusted",
                CHECKPOINT,
                "signature NOT checked: the Python package 'cryptography' is missing "
                "(pip install cryptography)",
            )
        except NoteError as exc:
            who = "the --key keys" if keys else KEYS
            if exc.untrusted:
                add("checkpoint_untrusted", CHECKPOINT, f"is not signed by any key of {who}")
            else:
                add("checkpoint_invalid", CHECKPOINT, str(exc))
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
    tree_size = proofs.get("tree_size")
    if checkpoint is not None and proofs and tree_size != checkpoint.size:
        add(
            "proof_invalid",
            PROOFS,
            f"proofs are for a tree of size {tree_size}, the checkpoint's is {checkpoint.size}",
        )
    raw_entries = read(ENTRIES)
    if raw_entries is None:
        add("entry_missing", ENTRIES, "is missing")
        raw_entries = b""
    lines_b = raw_entries.split(b"\n")
    if lines_b and lines_b[-1] == b"":
        lines_b.pop()
    parsed: list[tuple[int, dict[str, Any]]] = []
    seen: set[int] = set()
    proven = 0
    for number, raw in enumerate(lines_b, 1):
        where = f"{ENTRIES} line {number}"
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
        if is_canonical(raw):
            # Compared with the catalog and the files below whether or not its proof holds:
            # a proof problem is reported on its own, an entry is missing only if absent.
            parsed.append((seq, entry))
        else:
            add("proof_invalid", where, "is not canonical JSON: its bytes are not as logged")
        if checkpoint is None or not proofs:
            continue
        if seq > checkpoint.size:
            add("proof_invalid", where, f"is beyond the checkpoint's size {checkpoint.size}")
            continue
        try:
            path = [base64.b64decode(h, validate=True) for h in proofs["proofs"][str(seq)]]
        except (KeyError, TypeError, ValueError):
            add("proof_invalid", where, f"has no usable inclusion proof in {PROOFS}")
            continue
        if verify_inclusion(seq - 1, checkpoint.size, leaf_hash(raw), path, checkpoint.root):
            proven += 1
        else:
            add(
                "proof_invalid",
                where,
                "is not included in the signed log (changed, moved or forged)",
            )

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


def main(argv: list[str] | None = None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(
        prog="verify.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bag", nargs="?", default=here, help="the disc root (default: %(default)s)")
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
    result = check_bag(args.bag, args.key)
    for problem in result.problems:
        print(problem)
    if result.problems:
        count = len(result.problems)
        print(f"{count} problem{'s' if count != 1 else ''} / 发现 {count} 个问题")
        return 1
    cp = result.checkpoint
    size = cp.size if cp is not None else 0
    print(
        f"OK / 通过: {len(result.recordings)} files match their manifest and log entries; "
        f"{result.entries} log entries are in the signed log of {size} entries"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
