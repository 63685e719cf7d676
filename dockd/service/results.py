"""What the Service's changes and proofs hand back: typed values, not dicts.

Each value has `as_json()`, the shape the daemon's socket and `--json` print
(runner/operations.py `wire` calls it, once, for every request). Fields that
a change did not touch (no retention moved, no state given) are left out of
the JSON, as they always were.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol


class Jsonable(Protocol):
    def as_json(self) -> dict[str, Any]: ...


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "as_json"):
        return value.as_json()
    return value


class _AsJson:
    """`as_json()` from the dataclass's fields; `moved` spreads; an optional field
    (default None) left None is left out."""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            if isinstance(value, Moved):
                out |= value.as_json()
            else:
                out[f.name] = _plain(value)
        return out


@dataclass(frozen=True)
class Moved(_AsJson):
    """How a change moved retention: tiers recomputed, deletions called off."""

    tier_changed: int = 0
    kept_from_deletion: int = 0


@dataclass(frozen=True)
class Tagged(_AsJson):
    recordings: tuple[int, ...]
    log_entry: int
    moved: Moved


@dataclass(frozen=True)
class CaseChanged(_AsJson):
    """A case created, linked to or unlinked from recordings, or moved to a state."""

    case: str
    log_entry: int
    linked: tuple[int, ...] | None = None
    unlinked: tuple[int, ...] | None = None
    state: str | None = None
    moved: Moved | None = None


@dataclass(frozen=True)
class HoldChanged(_AsJson):
    """A legal hold set or released, and the recordings it covers."""

    hold: int
    recordings: tuple[int, ...]
    log_entry: int
    moved: Moved


@dataclass(frozen=True)
class GapExplained(_AsJson):
    gap: str
    log_entry: int


@dataclass(frozen=True)
class Restored(_AsJson):
    recording: int
    keep_until: str
    log_entry: int
    moved: Moved


@dataclass(frozen=True)
class SpotCheck(_AsJson):
    """A drawn sample (R8): the seed reproduces it; the recordings as `dockd show` gives them."""

    seed: int
    population: int
    recordings: tuple[dict[str, Any], ...]
    log_entry: int


@dataclass(frozen=True)
class ExportCreated(_AsJson):
    export: int
    discs: tuple[dict[str, Any], ...]  # each disc of the plan: number, copy, recordings, bytes
    log_entry: int


@dataclass(frozen=True)
class DiscBuilt(_AsJson):
    label: str
    image: str
    sha256: str
    built: bool  # False: the image was there already and still hashes the same


@dataclass(frozen=True)
class DiscBurned(_AsJson):
    label: str
    drive: str
    ok: bool
    read_back_sha256: str | None
    image_sha256: str
    log_entry: int


@dataclass(frozen=True)
class InclusionProof(_AsJson):
    """Everything an outsider needs to check that a recording's entry is in the log."""

    recording: int
    entry: str
    leaf_index: int
    leaf_hash: str
    tree_size: int
    inclusion_path: tuple[str, ...]
    checkpoint: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class ConsistencyProof(_AsJson):
    old_size: int
    new_size: int
    old_root: str
    new_root: str
    consistency_path: tuple[str, ...]
    keys: tuple[str, ...]


@dataclass(frozen=True)
class LogExported:
    out: str
    first: int
    last: int
    tree_size: int

    def as_json(self) -> dict[str, Any]:
        return {"out": self.out, "from": self.first, "to": self.last, "tree_size": self.tree_size}


@dataclass(frozen=True)
class Hold(_AsJson):
    """A legal hold on a case's recordings or on recordings named one by one."""

    hold: int
    case: str | None  # None: a hold on recordings named by id
    recordings: tuple[int, ...]
    reason: str
    set_at: str
    set_by: str | None
    active: bool
    released_at: str | None
    released_by: str | None
    release_reason: str | None


@dataclass(frozen=True, kw_only=True)
class _CaseFacts(_AsJson):
    """What a case is (case.created, closed/reopened): Case and CaseDetail share it."""

    cause: str
    parties: tuple[str, ...]
    categories: tuple[str, ...]
    state: str
    created_at: str
    closed_at: str | None
    log_seq: int


@dataclass(frozen=True, kw_only=True)
class Case(_CaseFacts):
    """A case as `dockd case list` shows it: its facts and how many recordings it has."""

    no: str
    recordings: int


@dataclass(frozen=True, kw_only=True)
class CaseDetail(_CaseFacts):
    """A case with its recordings and holds (`dockd case show`)."""

    case: str
    recordings: tuple[Jsonable, ...]  # Recording values
    holds: tuple[Hold, ...]


@dataclass(frozen=True)
class Disc(_AsJson):
    """One disc of an export: its recordings, and its image and burn once made."""

    label: str
    export_id: int
    number: int
    copy: int
    recordings: tuple[int, ...]
    image_sha256: str | None
    image_size: int | None
    built_at: str | None
    build_log_seq: int | None
    burned_at: str | None
    drive: str | None
    burn_log_seq: int | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Disc:
        """From `Catalog.discs()` / `disc()` (a row with `recordings`, its ids)."""
        names = {f.name for f in fields(cls)} - {"recordings"}
        return cls(recordings=tuple(row["recordings"]), **{k: row[k] for k in names})


@dataclass(frozen=True)
class Export(_AsJson):
    """An approved export (R6: a copy needs approval) and its discs."""

    id: int
    created_at: str
    medium: str
    capacity: int
    copies: int
    selection: dict[str, Any]
    approved_by: str
    reason: str
    by: str | None
    log_seq: int
    discs: tuple[Disc, ...]


def wire(result: Any) -> Any:
    """A request's result as JSON values: typed values by their `as_json`, lists and
    mappings item by item (an operation may gather several results in one)."""
    if isinstance(result, list | tuple):
        return [wire(item) for item in result]
    if isinstance(result, dict):
        return {key: wire(value) for key, value in result.items()}
    if hasattr(result, "as_json"):
        return result.as_json()
    return result


@dataclass(frozen=True)
class ScopedLogExported(_AsJson):
    """A scoped log export (`dockd log export --case/--ids`): the entries about some
    recordings, each with its inclusion proof; it proves inclusion, not completeness."""

    out: str
    case: str | None  # None: scoped by recording ids
    recordings: tuple[int, ...]
    entries: int
    tree_size: int


@dataclass(frozen=True)
class PackageWritten(_AsJson):
    """A copy package written (Exports.write_copy_package).

    `package_sha256` is the SHA-256 of the package's tagmanifest-sha256.txt,
    which lists the SHA-256 of every tag file, manifest-sha256.txt among
    them, which lists that of every data/ file: the one value names the whole
    package. `files` and `bytes` count the data/ files; `entries` the log
    entries it carries; `kept` is the folder on the dock holding the record
    of what was handed out (its tag files, the manifests among them).
    """

    out: str
    package_sha256: str
    files: int
    bytes: int
    entries: int
    kept: str


@dataclass(frozen=True)
class AccessRequest(_AsJson):
    """A request to view, copy or export recordings, and its decision (R6).

    `state` is pending, approved, refused, or expired (approved, but its
    `expires_at` has passed: computed when read, never stored).
    """

    request: int
    kind: str
    recordings: tuple[int, ...]
    case: str | None
    reason: str
    for_party: str | None
    until: str | None
    requested_by: str
    requested_at: str
    state: str
    decided_by: str | None
    decided_at: str | None
    note: str | None
    expires_at: str | None
    log_entry: int
    decision_entry: int | None
    uses: int


@dataclass(frozen=True)
class Viewed(_AsJson):
    """A view grant opened: read-only copies in `folder`, removed when the grant ends."""

    request: int
    folder: str
    files: tuple[str, ...]
    until: str
    log_entry: int


@dataclass(frozen=True)
class Copied(_AsJson):
    """A copy package written for an approved request, and its `access.copied` entry."""

    request: int
    package: PackageWritten
    for_party: str | None
    log_entry: int


@dataclass(frozen=True)
class Marked(_AsJson):
    """Recordings marked confidential (or the mark removed: level None)."""

    recordings: tuple[int, ...]
    level: str | None
    log_entry: int
