"""The bucket: checked before use, written once per key, proven after (an I/O edge).

A thin layer over boto3 that says what an S3 answer means for evidence:

- `check_target` refuses a bucket that cannot keep evidence as the rules say
  (no Object Lock, no versioning), wrong credentials, an unreachable endpoint
  or a clock the server rejects: ConfigError naming the setting (exit 2).
- `upload` sends a file with Content-MD5 on every request (single or each
  multipart part), so the server checks the bytes it stores, and the file's
  SHA-256 in the object's metadata (Ceph 16 keeps no `ChecksumSHA256`);
  the upload is read as it is sent, in `part_size` pieces, never all at once.
  The COMPLIANCE lock is set on the new version (for a multipart upload,
  once completed: Ceph 16 ignores the lock headers of CreateMultipartUpload).
- `proven` HEADs that version and says whether size, SHA-256 metadata, lock
  mode and retain-until are what was meant: only then is it "verified".
- `extend` pushes a version's retain-until later (COMPLIANCE: never earlier).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dockd.errors import ConfigError, DockdError

MIN_PART = 5 << 20  # S3's smallest part but the last


class BucketError(DockdError):
    """The bucket refused or failed a request (retried later; never blocks ingest)."""


@dataclass(frozen=True)
class Uploaded:
    key: str
    version_id: str
    size: int
    sha256: str
    retain_until: datetime


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(exc).__name__))


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _pieces(path: Path, size: int) -> Iterator[bytes]:
    with open(path, "rb") as src:
        while block := src.read(size):
            yield block


class Bucket:
    def __init__(self, client: Any, name: str) -> None:
        self.s3 = client
        self.name = name

    def check_target(self) -> None:
        """Refuse a bucket that cannot hold evidence under COMPLIANCE locks."""
        try:
            lock = self.s3.get_object_lock_configuration(Bucket=self.name)
            versioning = self.s3.get_bucket_versioning(Bucket=self.name)
        except Exception as exc:
            code = _code(exc)
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
                raise ConfigError(
                    f"replicate.credentials: the bucket {self.name!r} refused them ({code})"
                ) from None
            if code in ("NoSuchBucket",):
                raise ConfigError(f"replicate.bucket: no bucket {self.name!r} ({code})") from None
            if code in ("ObjectLockConfigurationNotFoundError", "InvalidBucketState"):
                raise ConfigError(
                    f"replicate.bucket: {self.name!r} has no Object Lock; evidence needs a "
                    "bucket created with it (create-bucket --object-lock-enabled-for-bucket)"
                ) from None
            if code in ("RequestTimeTooSkewed",):
                raise ConfigError(
                    "replicate.endpoint: the server rejects this machine's clock "
                    "(RequestTimeTooSkewed): set the time (timedatectl, NTP)"
                ) from None
            raise ConfigError(f"replicate.endpoint: cannot reach the bucket: {exc}") from None
        if lock.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise ConfigError(f"replicate.bucket: {self.name!r} has Object Lock disabled")
        if versioning.get("Status") != "Enabled":
            raise ConfigError(f"replicate.bucket: {self.name!r} has versioning off")

    def upload(
        self, key: str, path: Path, sha256: str, size: int, until: datetime, part_size: int
    ) -> Uploaded:
        """Send `path` (`size` bytes, `sha256`) to `key` as a new version, locked until
        `until` in COMPLIANCE mode. Raises BucketError; a multipart upload that fails is
        aborted, so no half object stays behind."""
        part_size = max(part_size, MIN_PART)
        meta = {"sha256": sha256}
        lock = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until}
        try:
            if size <= part_size:
                data = path.read_bytes()
                answer = self.s3.put_object(
                    Bucket=self.name, Key=key, Body=data, ContentMD5=_md5(data),
                    Metadata=meta, **lock,
                )  # fmt: skip
                version = str(answer["VersionId"])
            else:
                version = self._multipart(key, path, meta, lock, part_size)
                # Ceph 16 ignores the lock headers of CreateMultipartUpload: set it on
                # the completed version (HEAD in `proven` says whether it holds).
                self.extend(key, version, until)
        except BucketError:
            raise
        except Exception as exc:
            raise BucketError(f"{key}: upload failed ({_code(exc)}): {exc}") from None
        return Uploaded(key, version, size, sha256, until)

    def _multipart(
        self, key: str, path: Path, meta: dict[str, str], lock: dict[str, Any], part_size: int
    ) -> str:
        started = self.s3.create_multipart_upload(Bucket=self.name, Key=key, Metadata=meta, **lock)
        upload_id = started["UploadId"]
        parts = []
        try:
            for number, data in enumerate(_pieces(path, part_size), start=1):
                sent = self.s3.upload_part(
                    Bucket=self.name, Key=key, UploadId=upload_id, PartNumber=number,
                    Body=data, ContentMD5=_md5(data),
                )  # fmt: skip
                parts.append({"PartNumber": number, "ETag": sent["ETag"]})
            done = self.s3.complete_multipart_upload(
                Bucket=self.name, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )  # fmt: skip
        except Exception as exc:
            # If the server is gone, its lifecycle rule (README) aborts the upload later.
            with contextlib.suppress(Exception):
                self.s3.abort_multipart_upload(Bucket=self.name, Key=key, UploadId=upload_id)
            raise BucketError(f"{key}: multipart upload failed ({_code(exc)}): {exc}") from None
        return str(done["VersionId"])

    def proven(self, up: Uploaded) -> bool:
        """The version holds what was sent, locked as meant (HEAD, no download)."""
        try:
            head = self.s3.head_object(Bucket=self.name, Key=up.key, VersionId=up.version_id)
        except Exception as exc:
            raise BucketError(f"{up.key}: cannot check the upload ({_code(exc)})") from None
        return bool(
            head.get("ContentLength") == up.size
            and head.get("Metadata", {}).get("sha256") == up.sha256
            and head.get("ObjectLockMode") == "COMPLIANCE"
            and head.get("ObjectLockRetainUntilDate") is not None
            and head["ObjectLockRetainUntilDate"] >= up.retain_until
        )

    def extend(self, key: str, version_id: str, until: datetime) -> None:
        """Lock the version until `until` (later than now set: COMPLIANCE only grows)."""
        try:
            self.s3.put_object_retention(
                Bucket=self.name, Key=key, VersionId=version_id,
                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until},
            )  # fmt: skip
        except Exception as exc:
            raise BucketError(f"{key}: cannot extend the lock ({_code(exc)})") from None
