"""The local log held against the bucket's latest checkpoint (pure).

Checked only against itself, a log can be cut, emptied or re-signed by
whoever holds the machine: the catalog deleted, every checkpoint deleted,
the signing key replaced and a new checkpoint signed all pass. The bucket
keeps every checkpoint under a COMPLIANCE lock as soon as it is signed, so
the latest one there is a fact the dock cannot take back:

- its signature must open with a pinned key (`integrity.trusted_keys`), or
  else with a key the bucket holds (`keys/`, locked too): never with a key
  only the local catalog vouches for;
- the local log must be at least that long (`log_shorter_than_bucket`), and
  its first N entries must hash to that root (`log_differs_from_bucket`);
- the catalog must still hold that checkpoint (`checkpoint_missing_locally`);
- every signing key after the log's first must come from `key.rotated`
  (`signing_key_replaced`): `dockd rotate-key` is the only way to change
  keys, and a key that appears by `key.created` later is one that was put
  in place of the real one (or a lost key re-created: an admin must say so).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dockd.integrity.chain import LogEntry, Problem
from dockd.integrity.checkpoint import Checkpoint, CheckpointError
from dockd.integrity.note import NoteError, VerifierKey, open_note


@dataclass(frozen=True)
class BucketCheckpoint:
    key: str
    note: str


@dataclass(frozen=True)
class Anchor:
    """What the bucket said: the checkpoint checked against, or why none was."""

    checked: bool
    detail: str
    size: int = 0


def compare(
    latest: BucketCheckpoint | None,
    trusted: Sequence[VerifierKey],
    local_size: int,
    local_root: Callable[[int], bytes],
    local_sizes: set[int],
    entries: dict[int, LogEntry],
) -> tuple[Anchor, list[Problem]]:
    """`local_root(n)`: the root of the local log's first n entries (n <= local_size)."""
    problems = replaced_keys(entries)
    if latest is None:
        return Anchor(False, "the bucket holds no checkpoint of this dock yet"), problems
    where = f"bucket checkpoint {latest.key}"
    try:
        opened = open_note(latest.note, list(trusted))
        body = Checkpoint.from_text(opened.text)
    except (NoteError, CheckpointError) as exc:
        problems.append(Problem("bucket_checkpoint_untrusted", where, str(exc)))
        return Anchor(True, f"{where}: untrusted"), problems
    anchor = Anchor(True, f"{where} (size {body.size})", body.size)
    if local_size < body.size:
        problems.append(
            Problem(
                "log_shorter_than_bucket",
                where,
                f"the bucket's checkpoint signs {body.size} entries, the local log has "
                f"{local_size}: entries were removed (or the catalog replaced)",
            )
        )
        return anchor, problems
    if local_root(body.size) != body.root:
        problems.append(
            Problem(
                "log_differs_from_bucket",
                where,
                f"the local log's first {body.size} entries do not hash to the root the "
                "bucket holds: the history was rewritten",
            )
        )
    if body.size not in local_sizes:
        problems.append(
            Problem(
                "checkpoint_missing_locally",
                where,
                f"the bucket holds the checkpoint of size {body.size}; the catalog has none "
                "of that size (checkpoints were deleted)",
            )
        )
    return anchor, problems


def replaced_keys(entries: dict[int, LogEntry]) -> list[Problem]:
    """Keys introduced by `key.created` after the log's first key."""
    problems: list[Problem] = []
    first = True
    for seq in sorted(entries):
        entry = entries[seq]
        if entry.kind == "key.rotated":
            first = False
        elif entry.kind == "key.created":
            if not first:
                problems.append(
                    Problem(
                        "signing_key_replaced",
                        f"log entry {seq}",
                        f"key {entry.data.get('key_id')} was introduced by key.created, not "
                        "by a rotation from the key before it: the signing key was replaced "
                        "(or lost and re-created)",
                    )
                )
            first = False
    return problems
