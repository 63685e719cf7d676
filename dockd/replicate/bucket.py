"""The bucket: checked before use, written once per key, proven after (an I/O edge).

A thin layer over boto3 that says what an S3 answer means for evidence:

- `check_target` refuses a bucket that cannot keep evidence as the rules say
  (no Object Lock, no versioning), wrong credentials or a clock the server
  rejects: ConfigError naming the setting (exit 2). An endpoint that does
  not answer is a BucketError: the dock works offline and tries again.
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
import configparser
import contextlib
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from dockd.config import ReplicateConfig
from dockd.errors import ConfigError, DockdError
from dockd.replicate.throttle import Throttle

MIN_PART = 5 << 20  # S3's smallest part but the last


class BucketError(DockdError):
    """The bucket refused or failed a request (retried later; never blocks ingest)."""

    exit_code = 4  # `dockd replicate push`: not uploaded, still queued


@dataclass(frozen=True)
class Uploaded:
    key: str
    version_id: str
    size: int
    sha256: str
    retain_until: datetime


@dataclass(frozen=True)
class _Put:
    """One upload's settings, as `upload` hands them to the single or multipart path."""

    key: str
    meta: dict[str, str]
    lock: dict[str, Any]
    part_size: int
    on_multipart: Callable[[str], None]
    should_stop: Callable[[], bool]


def error_code(exc: Exception) -> str:
    """The S3 error code of a botocore error (AccessDenied, NoSuchKey…), else its type."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(exc).__name__))


def _unreachable(exc: Exception) -> bool:
    """No answer from the bucket (network, timeout, server error): try again later."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return True
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return bool(isinstance(status, int) and status >= 500)


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _pieces(src: BinaryIO, size: int) -> Iterator[bytes]:
    while block := src.read(size):
        yield block
        del block  # not held while the next part is read: one part in memory, not two


def _credentials(path: str) -> dict[str, str]:
    """aws_access_key_id / aws_secret_access_key from an AWS-style credentials file."""
    parser = configparser.ConfigParser()
    try:
        with open(path, encoding="utf-8") as src:
            parser.read_file(src)
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ConfigError(f"replicate.credentials: cannot read {path}: {exc}") from None
    section = parser["default"] if parser.has_section("default") else None
    if section is None or not {"aws_access_key_id", "aws_secret_access_key"} <= set(section):
        raise ConfigError(
            f"replicate.credentials: {path} needs a [default] section with "
            "aws_access_key_id and aws_secret_access_key"
        )
    return {
        "aws_access_key_id": section["aws_access_key_id"].strip(),
        "aws_secret_access_key": section["aws_secret_access_key"].strip(),
    }


def s3_client(endpoint: str, region: str, credentials: str = "") -> Any:
    """A boto3 S3 client; credentials from the file, else boto3's usual sources."""
    import boto3
    from botocore.config import Config as BotoConfig

    secrets = _credentials(credentials) if credentials else {}
    return boto3.client(
        "s3",
        endpoint_url=endpoint or None,
        region_name=region,
        config=BotoConfig(
            # Ceph and MinIO are addressed by path; AWS takes either.
            s3={"addressing_style": "path"} if endpoint else {},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
        ),
        **secrets,
    )


class Bucket:
    def __init__(self, client: Any, name: str, throttle: Throttle | None = None) -> None:
        self.s3 = client
        self.name = name
        self.throttle = throttle or Throttle(0)

    @classmethod
    def open(cls, config: ReplicateConfig) -> Bucket:
        """The configured bucket (not yet checked: `check_target`)."""
        client = s3_client(config.endpoint, config.region, config.credentials)
        return cls(client, config.bucket, Throttle(config.bandwidth_limit))

    def check_target(self) -> None:
        """Refuse a bucket that cannot hold evidence under COMPLIANCE locks."""
        try:
            lock = self.s3.get_object_lock_configuration(Bucket=self.name)
            versioning = self.s3.get_bucket_versioning(Bucket=self.name)
        except Exception as exc:
            if _unreachable(exc):
                # Not a wrong setting: the network or the server. A dock works offline,
                # so the caller carries on and tries again later.
                raise BucketError(
                    f"replicate.endpoint: cannot reach the bucket {self.name!r} now: {exc}"
                ) from None
            code = error_code(exc)
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
            raise ConfigError(
                f"replicate.endpoint: the bucket refused the check ({code}): {exc}"
            ) from None
        if lock.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise ConfigError(f"replicate.bucket: {self.name!r} has Object Lock disabled")
        if versioning.get("Status") != "Enabled":
            raise ConfigError(f"replicate.bucket: {self.name!r} has versioning off")

    def upload(
        self,
        key: str,
        source: Path | bytes,
        sha256: str,
        size: int,
        until: datetime,
        part_size: int,
        on_multipart: Callable[[str], None] = lambda upload_id: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Uploaded:
        """Send `source` (a file or bytes: `size` bytes, `sha256`) to `key` as a new
        version, locked until `until` in COMPLIANCE mode. Raises BucketError; a
        multipart upload that fails is aborted, so no half object stays behind, and
        `on_multipart` hears its id first (to abort it after a crash). `should_stop`
        is asked between parts: a stopping daemon aborts rather than waits."""
        part_size = max(part_size, MIN_PART)
        meta = {"sha256": sha256}
        lock = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until}
        try:
            with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as src:
                job = _Put(key, meta, lock, part_size, on_multipart, should_stop)
                version = self._send(job, src, size)
            if size > part_size:
                # Ceph 16 ignores the lock headers of CreateMultipartUpload: set it on
                # the completed version (HEAD in `proven` says whether it holds).
                self.extend(key, version, until)
        except BucketError:
            raise
        except OSError as exc:
            raise BucketError(f"{key}: cannot read what to send: {exc}") from None
        except Exception as exc:
            raise BucketError(f"{key}: upload failed ({error_code(exc)}): {exc}") from None
        return Uploaded(key, version, size, sha256, until)

    def _send(self, job: _Put, src: BinaryIO, size: int) -> str:
        key, meta, lock = job.key, job.meta, job.lock
        if size > job.part_size:
            return self._multipart(job, src)
        data = src.read()
        if len(data) != size:
            raise BucketError(f"{key}: {len(data)} bytes to send, {size} expected")
        self.throttle.take(len(data))
        answer = self.s3.put_object(
            Bucket=self.name, Key=key, Body=data, ContentMD5=_md5(data),
            Metadata=meta, **lock,
        )  # fmt: skip
        return str(answer["VersionId"])

    def _multipart(self, job: _Put, src: BinaryIO) -> str:
        key, meta, lock, part_size = job.key, job.meta, job.lock, job.part_size
        started = self.s3.create_multipart_upload(Bucket=self.name, Key=key, Metadata=meta, **lock)
        upload_id = str(started["UploadId"])
        job.on_multipart(upload_id)
        parts: list[dict[str, Any]] = []
        try:
            # No enumerate(): its tuple would keep the last part alive while the next
            # one is read (bench/replicate.py measured 2x part_size without this).
            for data in _pieces(src, part_size):
                if job.should_stop():
                    raise BucketError(f"{key}: stopped before part {len(parts) + 1}")
                number = len(parts) + 1
                self.throttle.take(len(data))
                sent = self.s3.upload_part(
                    Bucket=self.name, Key=key, UploadId=upload_id, PartNumber=number,
                    Body=data, ContentMD5=_md5(data),
                )  # fmt: skip
                del data
                parts.append({"PartNumber": number, "ETag": sent["ETag"]})
            done = self.s3.complete_multipart_upload(
                Bucket=self.name, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )  # fmt: skip
        except Exception as exc:
            # If the server is gone, the next start aborts it (the queue kept its id),
            # and the bucket's lifecycle rule (README) cleans up after a lost dock.
            self.abort(key, upload_id)
            code = error_code(exc)
            raise BucketError(f"{key}: multipart upload failed ({code}): {exc}") from None
        return str(done["VersionId"])

    def abort(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload (best effort: gone already, or the server is down)."""
        with contextlib.suppress(Exception):
            self.s3.abort_multipart_upload(Bucket=self.name, Key=key, UploadId=upload_id)

    def existing(self, key: str, sha256: str, size: int) -> Uploaded | None:
        """The key's latest version if it already holds these bytes (by size and SHA-256
        metadata): an upload whose answer was lost, or a dock rebuilt from scratch.
        Adopting it, rather than sending a second version, keeps one version per key."""
        try:
            head = self.s3.head_object(Bucket=self.name, Key=key)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise BucketError(f"{key}: cannot look it up ({error_code(exc)})") from None
        if head.get("ContentLength") != size or head.get("Metadata", {}).get("sha256") != sha256:
            return None
        until = head.get("ObjectLockRetainUntilDate")
        if head.get("ObjectLockMode") != "COMPLIANCE" or until is None:
            return None
        return Uploaded(key, str(head.get("VersionId")), size, sha256, until)

    def _listed(self, prefix: str) -> list[str]:
        keys: list[str] = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        for page in pages:
            keys.extend(str(item["Key"]) for item in page.get("Contents", []))
        return keys

    def _text(self, key: str) -> str:
        return str(self.s3.get_object(Bucket=self.name, Key=key)["Body"].read().decode("utf-8"))

    def latest_checkpoint(self, prefix: str) -> tuple[str, str] | None:
        """(key, signed note) of the dock's largest checkpoint in the bucket, if any."""
        try:
            keys = [k for k in self._listed(f"{prefix}/checkpoints/") if k.endswith(".txt")]
            if not keys:
                return None
            latest = max(keys)  # sizes are zero-padded: the largest key is the latest
            return latest, self._text(latest)
        except Exception as exc:
            raise BucketError(f"cannot read the bucket's checkpoints ({error_code(exc)})") from None

    def public_keys(self, prefix: str) -> list[str]:
        """The verifier keys the dock put in the bucket (`keys/`)."""
        try:
            return [
                line.strip()
                for key in self._listed(f"{prefix}/keys/")
                for line in self._text(key).splitlines()
                if line.strip()
            ]
        except Exception as exc:
            raise BucketError(f"cannot read the bucket's keys ({error_code(exc)})") from None

    def proven(self, up: Uploaded) -> bool:
        """The version holds what was sent, locked as meant (HEAD, no download)."""
        try:
            head = self.s3.head_object(Bucket=self.name, Key=up.key, VersionId=up.version_id)
        except Exception as exc:
            raise BucketError(f"{up.key}: cannot check the upload ({error_code(exc)})") from None
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
            raise BucketError(f"{key}: cannot extend the lock ({error_code(exc)})") from None
