"""Thin, typed wrappers around the `xorriso` binary: build, list, extract, burn, read back.

Every call runs xorriso as a subprocess with a timeout and turns a failure
into an `XorrisoError` carrying xorriso's own complaint. Names are always
treated as UTF-8 (`-local_charset UTF-8`): under a C locale xorriso would
otherwise write `_` for every non-ASCII character in the Joliet tree, i.e.
Chinese names would be unreadable on Windows.

Drives are xorriso addresses: a real burner (`/dev/sr0`) or the pseudo-drive
`stdio:/path/to/file`, which writes the same way into a file; tests use the
latter to exercise the real burn-then-read-back path without hardware.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from dockd.archive.bag import ArchiveError

XORRISO = "xorriso"
BLOCK = 2048
VOLUME_ID = re.compile(r"[A-Z0-9_]{1,32}")
_CHARSET = ["-local_charset", "UTF-8"]
_SHORT = 600.0
_LONG = 8 * 3600.0
_CHUNK = 4 << 20
_SEVERE = re.compile(r"(?:xorriso|libisofs|libburn|libisoburn)\s*:\s*(?:FAILURE|SORRY|FATAL|ABORT)")


class XorrisoError(ArchiveError):
    """xorriso failed, timed out or is not installed."""


def _summary(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    severe = [ln for ln in lines if _SEVERE.search(ln)]
    worst = [ln for ln in severe if not re.search(r":\s*SORRY\s*:", ln)]
    picked = (worst[:2] + [ln for ln in severe if ln not in worst][:2]) or lines[-3:]
    return "; ".join(picked) or "no message"


def _run(args: list[str], what: str, timeout: float | None) -> subprocess.CompletedProcess[bytes]:
    cmd = [XORRISO, *_CHARSET, *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise XorrisoError(f"{what}: xorriso is not installed (apt install xorriso)") from None
    except subprocess.TimeoutExpired:
        raise XorrisoError(f"{what}: xorriso did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise XorrisoError(
            f"{what}: xorriso failed (exit {proc.returncode}): {_summary(proc.stderr)}"
        )
    return proc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _stdio(iso: Path) -> str:
    """The xorriso address of an image file, once it is known to be one.

    xorriso given a file that is no ISO image (or no file at all) quietly
    loads an empty image called ISOIMAGE and exits 0; so look for the
    primary volume descriptor (sector 16: type 1, "CD001") first.
    """
    try:
        with open(iso, "rb") as f:
            f.seek(16 * BLOCK)
            head = f.read(6)
    except OSError as exc:
        raise ArchiveError(f"{iso}: cannot read the image: {exc.strerror or exc}") from None
    if head != b"\x01CD001":
        raise ArchiveError(f"{iso}: not an ISO 9660 image (no primary volume descriptor)")
    return f"stdio:{iso.resolve()}"


def iso_volume_id(text: str) -> str:
    """`text` as an ISO 9660 volume id: at most 32 of A-Z 0-9 _ (d-characters)."""
    volid = re.sub(r"[^A-Z0-9_]", "_", text.upper())[:32]
    if not volid.strip("_"):
        raise ArchiveError(f"{text!r} gives no usable volume id")
    return volid


# -- build and inspect images ----------------------------------------------------------


def build_iso(
    bag_dir: Path, out_iso: Path, volume_label: str, *, timeout: float | None = _LONG
) -> Path:
    """Write an ISO 9660 image of `bag_dir` (its root is the image root) to `out_iso`.

    Level 3 (files over 4 GiB as several extents), Joliet with names up to
    103 characters (`-joliet-long`; longer names would be cut silently, and
    without it overlong paths would be left out of Joliet: dropped on
    Windows) and Rock Ridge with `-r` (owner root, readable by all, no write
    bits: no uid of the dock leaks onto the disc). Written to `OUT.part`,
    fsynced and renamed, so an interrupted build never leaves a file that
    looks complete.
    """
    if not VOLUME_ID.fullmatch(volume_label):
        raise ArchiveError(
            f"volume label {volume_label!r} must be 1-32 characters of A-Z, 0-9 and _ "
            "(see iso_volume_id)"
        )
    if not bag_dir.is_dir():
        raise ArchiveError(f"{bag_dir}: not a folder")
    out_iso = out_iso.resolve()
    part = out_iso.with_name(out_iso.name + ".part")
    part.unlink(missing_ok=True)
    args = ["-as", "mkisofs", "-iso-level", "3", "-J", "-joliet-long", "-r"]
    args += ["-V", volume_label, "-o", str(part), str(bag_dir.resolve())]
    try:
        _run(args, f"building {out_iso.name}", timeout)
        _fsync(part)
        os.replace(part, out_iso)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    _fsync_dir(out_iso.parent)
    return out_iso


_ESCAPES = {"a": 7, "b": 8, "e": 27, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}


def _unescape(text: str) -> str:
    """Undo xorriso's `-backslash_codes encode_output` (octal bytes, \\n, \\\\ ...)."""
    raw = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c != 0x5C or i + 1 >= len(raw):
            out.append(c)
            i += 1
            continue
        nxt = chr(raw[i + 1])
        if re.fullmatch(rb"[0-7]{3}", raw[i + 1 : i + 4]):
            out.append(int(raw[i + 1 : i + 4], 8) & 0xFF)
            i += 4
        elif nxt == "x" and re.fullmatch(rb"[0-9a-fA-F]{2}", raw[i + 2 : i + 4]):
            out.append(int(raw[i + 2 : i + 4], 16))
            i += 4
        elif nxt == "c" and i + 2 < len(raw):
            out.append(raw[i + 2] & 0x1F)
            i += 3
        elif nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(c)
            i += 1
    return out.decode("utf-8", "surrogateescape")


def _quoted_name(text: str) -> str:
    """The ISO path of a listing line's quoted name, leading '/' removed."""
    words = shlex.split(text)
    if len(words) != 1:
        raise XorrisoError(f"cannot parse xorriso's listing line: {text!r}")
    return _unescape(words[0]).lstrip("/")


_LSDL = re.compile(r"^\S+\s+\d+\s+\S+\s+\S+\s+(\d+)\s+\S+\s+\d+\s+\S+\s+('.*)$")
_SECTION = re.compile(r"^File data lba:\s*\d+\s*,\s*(\d+)\s*,\s*\d+\s*,\s*(\d+)\s*,\s*('.*)$")
_LISTING = ["-backslash_codes", "encode_output"]


def list_iso(
    iso: Path, *, joliet: bool = False, timeout: float | None = _SHORT
) -> list[tuple[str, int]]:
    """Every regular file of the image: [(path without '/', size)], sorted.

    Names as Linux reads them (Rock Ridge), or with `joliet` as Windows does.
    """
    tree = ["-read_fs", "norock"] if joliet else []
    args = [*_LISTING, *tree, "-indev", _stdio(iso), "-find", "/", "-type", "f"]
    args += ["-exec", "lsdl", "--"]
    proc = _run(args, f"listing {iso.name}", timeout)
    found: list[tuple[str, int]] = []
    for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
        match = _LSDL.match(line)
        if match:
            found.append((_quoted_name(match.group(2)), int(match.group(1))))
    return sorted(found)


def iso_sections(iso: Path, path: str, *, timeout: float | None = _SHORT) -> list[tuple[int, int]]:
    """Where the file `path` lies in the image: [(byte offset, length)], one per extent."""
    target = "/" + path.lstrip("/")
    args = [*_LISTING, "-indev", _stdio(iso), "-find", target, "-exec", "report_sections", "--"]
    proc = _run(args, f"locating {path} in {iso.name}", timeout)
    sections: list[tuple[int, int]] = []
    for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
        match = _SECTION.match(line)
        if match and "/" + _quoted_name(match.group(3)) == target:
            sections.append((int(match.group(1)) * BLOCK, int(match.group(2))))
    if not sections and not any(size == 0 for p, size in list_iso(iso) if p == path.lstrip("/")):
        raise XorrisoError(f"{iso.name}: no file {target}")
    return sections


def sha256_in_iso(iso: Path, path: str) -> str:
    """SHA-256 of the file `path` read straight from the image's extents (no extraction)."""
    digest = hashlib.sha256()
    with open(iso, "rb") as f:
        for offset, length in iso_sections(iso, path):
            f.seek(offset)
            while length:
                block = f.read(min(_CHUNK, length))
                if not block:
                    raise ArchiveError(f"{iso}: {path} runs past the end of the image")
                digest.update(block)
                length -= len(block)
    return digest.hexdigest()


def extract_iso(iso: Path, dest: Path, *, timeout: float | None = _LONG) -> Path:
    """Copy the whole image (Rock Ridge names) into `dest` (absent or empty); no mount needed.

    Folders are made owner-writable afterwards (`-r` images make them
    read-only), so that the copy can be removed; files stay as on the disc.
    """
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ArchiveError(f"{dest}: extraction target must be absent or empty")
    dest.mkdir(parents=True, exist_ok=True)
    args = ["-osirrox", "on", "-indev", _stdio(iso), "-extract", "/", str(dest.resolve())]
    try:
        _run(args, f"extracting {iso.name}", timeout)
    finally:
        for folder, _dirs, _files in os.walk(dest):
            mode = os.stat(folder).st_mode
            os.chmod(folder, mode | 0o700)
    return dest


def volume_label(iso: Path, *, timeout: float | None = _SHORT) -> str:
    """The image's ISO 9660 volume id."""
    proc = _run(["-indev", _stdio(iso), "-pvd_info"], f"reading {iso.name}", timeout)
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        match = re.match(r"^Volume Id\s*:\s?(.*)$", line)
        if match:
            return match.group(1).strip()
    raise XorrisoError(f"{iso.name}: xorriso reported no volume id")


# -- drives ----------------------------------------------------------------------------------


def _check_drive(drive: str) -> None:
    if not (drive.startswith("/dev/") or drive.startswith("stdio:/")) or any(
        c.isspace() for c in drive
    ):
        raise ArchiveError(f"drive {drive!r} must be a device (/dev/sr0) or stdio:/absolute/path")


def find_burners(*, timeout: float | None = 120.0) -> list[str]:
    """The optical drives xorriso can use (`xorriso -devices`): ['/dev/sr0', ...]."""
    try:
        proc = subprocess.run(
            [XORRISO, "-devices"], capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise XorrisoError("xorriso is not installed (apt install xorriso)") from None
    except subprocess.TimeoutExpired:
        raise XorrisoError(f"xorriso -devices did not finish within {timeout} s") from None
    text = proc.stdout.decode("utf-8", "replace")
    drives = re.findall(r"-dev '(/dev/[^']+)'", text)
    if not drives and proc.returncode != 0 and b"No drives found" not in proc.stderr:
        raise XorrisoError(f"xorriso -devices failed: {_summary(proc.stderr)}")
    return drives


def burn(
    iso: Path,
    drive: str,
    *,
    blank: bool = False,
    eject: bool = False,
    speed: str | None = None,
    timeout: float | None = _LONG,
) -> None:
    """Write the image `iso` to the medium in `drive` and close the medium.

    `xorriso -as cdrecord -v dev=DRIVE [blank=as_needed] [-eject] [speed=S] ISO`.
    No `-multi`: the disc is closed (finalized), nothing can be appended.
    `blank` erases a rewritable medium first; it is off by default, so a
    medium that is not blank makes the burn fail instead of being erased.
    """
    _check_drive(drive)
    if not iso.is_file():
        raise ArchiveError(f"{iso}: no such image")
    args = ["-as", "cdrecord", "-v", f"dev={drive}"]
    if blank:
        args.append("blank=as_needed")
    if eject:
        args.append("-eject")
    if speed:
        args.append(f"speed={speed}")
    args.append(str(iso.resolve()))
    _run(args, f"burning {iso.name} to {drive}", timeout)


def _read_drive(
    drive: str, size: int, sink: Callable[[bytes], object], timeout: float | None
) -> str:
    """Stream the first `size` bytes of the medium in `drive` to `sink`; their SHA-256.

    `xorriso -outdev DRIVE -check_media data_to=- use=outdev what=disc ...`:
    reads the blocks through the drive (as after burning, with no reload),
    and fails if any block is unreadable.
    """
    _check_drive(drive)
    if size <= 0:
        raise ArchiveError("nothing to read back: size must be positive")
    blocks = (size + BLOCK - 1) // BLOCK
    cmd = [XORRISO, "-outdev", drive, "-check_media", "data_to=-", "use=outdev", "what=disc"]
    cmd += ["min_lba=0", f"max_lba={blocks - 1}", "event=FAILURE", "--"]
    digest = hashlib.sha256()
    left = size
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors)
        except FileNotFoundError:
            raise XorrisoError("xorriso is not installed (apt install xorriso)") from None
        timer = threading.Timer(timeout, proc.kill) if timeout is not None else None
        if timer is not None:
            timer.start()
        try:
            assert proc.stdout is not None
            while True:
                block = proc.stdout.read(_CHUNK)
                if not block:
                    break
                useful = block[:left]
                if useful:
                    digest.update(useful)
                    sink(useful)
                    left -= len(useful)
            code = proc.wait()
        finally:
            if timer is not None:
                timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        errors.seek(0)
        message = _summary(errors.read())
    if code != 0:
        cause = "timed out" if code < 0 and timeout is not None else f"failed (exit {code})"
        raise XorrisoError(f"reading back {drive}: xorriso {cause}: {message}")
    if left:
        raise XorrisoError(f"reading back {drive}: got {size - left} of {size} bytes")
    return digest.hexdigest()


def read_back(drive: str, size: int, out: Path, *, timeout: float | None = _LONG) -> str:
    """Copy the first `size` bytes of the medium in `drive` to `out` (atomically); their SHA-256."""
    out = out.resolve()
    part = out.with_name(out.name + ".part")
    part.unlink(missing_ok=True)
    try:
        with open(part, "xb") as f:
            digest = _read_drive(drive, size, f.write, timeout)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    _fsync_dir(out.parent)
    return digest


def sha256_of_drive(drive: str, size: int, *, timeout: float | None = _LONG) -> str:
    """SHA-256 of the first `size` bytes of the medium in `drive` (compare with the image's)."""
    return _read_drive(drive, size, lambda _block: None, timeout)
