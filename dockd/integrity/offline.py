"""Verifier of a `dockd log export` folder, for whoever has dockd installed.

    python -m dockd.integrity.offline FOLDER [--key NAME+ID+KEY ...]

It runs the folder's own checker: `dockd log export` copies
dockd/integrity/standalone_verify.py into the folder as verify.py, which an
outsider runs there with nothing but Python 3.8+ and `cryptography`:

    python3 verify.py --key NAME+ID+KEY          (Windows: py verify.py ...)

Both give the same verdict, from the same code. It checks that:

  1. checkpoint.txt is a C2SP signed note by one of the keys (keys.txt, or
     the --key values, which an auditor should take from an independent
     copy: a court file, an earlier disc) and a valid tlog-checkpoint;
  2. every entry in entries.jsonl is canonical JSON and hashes, with its
     inclusion proof in proofs.json, to the checkpoint's root (RFC 9162);
  3. the entries are those proofs.json names, numbered without gaps, and
     each one's `prev` is the SHA-256 of the one before.

The folder's layout is `Service.export_log`'s (dockd/service/ledger.py). Given a
disc folder instead (bagit.txt), it checks the disc, as verify.py would.
Exit 0 if everything holds, 1 with each problem on its own line, 2 on a bad
command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dockd.integrity import standalone_verify


def verify_export(folder: Path, pinned: list[str] | None = None) -> list[str]:
    """Every problem found in the export at `folder`, one line each; empty means intact."""
    return [str(p) for p in standalone_verify.check_export(str(folder), pinned).problems]


def main(argv: list[str] | None = None) -> int:
    return standalone_verify.main(
        argv,
        prog="python -m dockd.integrity.offline",
        description=__doc__,
        folder_required=True,
    )


if __name__ == "__main__":
    sys.exit(main())
