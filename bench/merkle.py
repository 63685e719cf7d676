"""Merkle benchmark: the log's RFC 9162 tree (append, proofs, full verify) against raw SHA-256.

Run as `.venv/bin/python bench/merkle.py` (about 3 minutes on 2 cores;
`--quick`: 100k entries and proofs at 1M leaves, about 30 s; `--help` lists
the options). This is a benchmark, not a test: it prints figures measured
side by side in one run and marks each target met or not met. It exits
non-zero only when something is *wrong* (two ways of computing the same root
or proof disagree), never because a target was missed.

What it does, in one temporary work directory (deleted at the end):

1. Append. Generates `--entries` synthetic log entries in memory (untimed):
   canonical-JSON-like `recording.ingested` entries of ~300 bytes,
   hash-chained through `prev` as dockd's are. Then times, over the same bytes:
   - raw SHA-256: `hashlib.sha256(entry).digest()` for each entry;
   - appends into a dict node store: `leaf_hash` + `merkle.appended_nodes`,
     each node stored under (level, index): the pure math's cost, the loop
     of `merkle.build_nodes` (the verifier's and the schema-2 migration's);
   - appends into a real SQLite table `merkle_nodes` (the catalog's DDL,
     WITHOUT ROWID) in a temporary file, WAL, synchronous=FULL: siblings read
     with the query `Catalog.node` runs, nodes inserted with `executemany` as
     `Catalog.append` does, one sqlite-utils `atomic()` transaction per
     `--batch` entries;
   - a diagnostic (`--no-diagnose` skips it): the same SQLite appends with
     the siblings taken from an in-memory CompactRange, the change proposed
     for merkle.py (the class is copied below, as merkle.py does not have it);
   and then `--per-commit` more entries into the SQLite table, one
   transaction each, as a per-file ingest commits.
2. Proofs. `--queries` random inclusion and consistency queries per row,
   each timed as proof generation + verification (`merkle.verify_*`):
   median, p99 and max, node reads per proof (a second, untimed
   generation through a counting reader) and proof length. On the SQLite
   table of step 1 (tree size `--entries`), and on a compact in-memory tree
   (one `bytes` per level, node i's hash at offset 32*i) over pseudo-random
   leaf hashes, at each of `--proof-sizes` (prefixes of the largest) and at
   the largest 2**k - 1 below it, the worst shape (every subtree on the
   right edge imperfect: the most reads). `--sqlite-big` also copies the
   compact tree into a SQLite table and runs the proofs through the
   catalog's query (~80 s and ~1 GB more per 10M leaves).
3. Full verify of the log of step 1: every leaf hash recomputed from the
   entry bytes, the root rebuilt with `appended_nodes` into a fresh dict and
   compared with the SQLite store's root; against hashing every entry once
   with hashlib. Also `merkle.build_nodes` itself when dockd has it (the
   call Service._check_tree makes; one call, so not interleaved), and the
   diagnostic: the proposed `CompactRange.extend`.

The methods of a table run interleaved, `--chunk` entries at a time in
rotating order, so that a noisy neighbour slows them alike; `--repeat` runs
(fresh stores each), medians, the runs' spread and CPU seconds are printed.
Peak RSS is this process's VmHWM per phase (reset through
/proc/self/clear_refs between phases when the kernel allows it).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import resource
import shutil
import sqlite3
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

# Measure the dockd of this checkout, whichever one the virtualenv has installed.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dockd.integrity.merkle as merkle  # noqa: E402
from dockd.integrity.merkle import (  # noqa: E402
    CompactRange,
    NodeReader,
    appended_nodes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

MiB = 1 << 20
HASH = 32

TARGET_APPEND_PER_S = 50_000.0  # entries/s, at least
TARGET_PROOF_MS = 5.0  # p99 of generation + verification at the largest size, at most
TARGET_VERIFY_RATIO = 2.0  # full verify time / hashing the entries once, at most

# The table as dockd/catalog.py (_migrate_2) creates it; the triggers fire on
# UPDATE and DELETE only, so they cost an append nothing.
NODES_SCHEMA = """
CREATE TABLE IF NOT EXISTS merkle_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS merkle_nodes_no_update BEFORE UPDATE ON merkle_nodes
BEGIN SELECT RAISE(ABORT, 'Merkle nodes are write-once'); END;
CREATE TRIGGER IF NOT EXISTS merkle_nodes_no_delete BEFORE DELETE ON merkle_nodes
BEGIN SELECT RAISE(ABORT, 'Merkle nodes are write-once'); END;
"""
# Verbatim the statements of Catalog.node and Catalog.append.
SELECT_NODE = "SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?"
INSERT_NODE = "INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)"


# -- the log -----------------------------------------------------------------------

_ENTRY = (
    b'{"data":{"device_serial":"DSJ%04d","recording":%d,"sha256":"%s","size":%d},'
    b'"kind":"recording.ingested","prev":"%s","seq":%d,'
    b'"time":"2024-%02d-%02dT%02d:%02d:%02d.%06dZ","v":1}'
)


def make_entries(first_seq: int, count: int, prev: bytes) -> tuple[list[bytes], bytes]:
    """`count` entries from seq `first_seq`, chained from `prev` (hex); and the last hash."""
    sha256 = hashlib.sha256
    out: list[bytes] = []
    for seq in range(first_seq, first_seq + count):
        content = sha256(seq.to_bytes(8, "little")).hexdigest().encode()
        t = seq * 7  # seconds into the year, roughly
        raw = _ENTRY % (
            seq % 9973,
            seq,
            content,
            10_000_000 + seq * 7919 % 2_000_000_000,
            prev,
            seq,
            1 + t // 2_592_000 % 12,
            1 + t // 86_400 % 28,
            t // 3600 % 24,
            t // 60 % 60,
            t % 60,
            seq * 104_729 % 1_000_000,
        )
        out.append(raw)
        prev = sha256(raw).hexdigest().encode()
    return out, prev


# -- node stores -------------------------------------------------------------------


def dict_reader(nodes: dict[tuple[int, int], bytes]) -> NodeReader:
    def read(level: int, index: int) -> bytes:
        return nodes[(level, index)]

    return read


class SqliteNodes:
    """merkle_nodes in a SQLite file, opened and read as dockd's Catalog does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        conn = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
        self.db = sqlite_utils.Database(conn, execute_plugins=False)
        mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise SystemExit(f"bench: {path}: cannot switch to WAL mode (got {mode})")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(NODES_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def remove(self) -> None:
        self.close()
        for suffix in ("", "-wal", "-shm"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)

    def node(self, level: int, idx: int) -> bytes:
        """As Catalog.node (a merkle.NodeReader)."""
        row = self.db.execute(SELECT_NODE, [level, idx]).fetchone()
        if row is None:
            raise SystemExit(f"bench: Merkle node ({level}, {idx}) is missing")
        return bytes(row[0])

    def append(self, size: int, raw: bytes) -> None:
        """As the Merkle half of Catalog.append, for leaf number `size`."""
        self.db.conn.executemany(INSERT_NODE, appended_nodes(size, leaf_hash(raw), self.node))

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM merkle_nodes").fetchone()[0])

    def file_bytes(self) -> tuple[int, int]:
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size, wal.stat().st_size if wal.exists() else 0


class Levels:
    """A compact tree: levels[l] holds the hashes of the perfect level-l nodes, 32 bytes each."""

    def __init__(self, levels: list[bytes]) -> None:
        self.levels = levels

    @property
    def nbytes(self) -> int:
        return sum(len(level) for level in self.levels)

    def read(self, level: int, index: int) -> bytes:
        start = index * HASH
        digest = self.levels[level][start : start + HASH]
        if len(digest) != HASH:
            raise KeyError((level, index))
        return digest

    def nodes(self, level: int) -> Iterator[tuple[int, int, bytes]]:
        data = self.levels[level]
        for index in range(len(data) // HASH):
            yield level, index, data[index * HASH : (index + 1) * HASH]


def build_levels(leaves: bytes) -> list[bytes]:
    """Every perfect node above the leaf hashes `leaves` (concatenated), level by level."""
    sha256 = hashlib.sha256
    step = 64 << 16  # 65536 nodes per join: bounded temporary lists
    levels = [leaves]
    current = leaves
    while len(current) >= 2 * HASH:
        end = len(current) // (2 * HASH) * (2 * HASH)
        parts = [
            b"".join(
                [
                    sha256(b"\x01" + current[i : i + 2 * HASH]).digest()
                    for i in range(start, min(start + step, end), 2 * HASH)
                ]
            )
            for start in range(0, end, step)
        ]
        current = b"".join(parts)
        levels.append(current)
    return levels


ProposedCompactRange = CompactRange  # now dockd.integrity.merkle.CompactRange


def self_check(rng: random.Random) -> None:
    """The bench's own tree builders agree with merkle.py (exit if not)."""
    entries = [rng.randbytes(rng.randrange(1, 400)) for _ in range(300)]
    nodes: dict[tuple[int, int], bytes] = {}
    read = dict_reader(nodes)
    frontier = ProposedCompactRange()
    for size, raw in enumerate(entries):
        added = appended_nodes(size, leaf_hash(raw), read)
        if frontier.append(leaf_hash(raw)) != added:
            raise SystemExit(f"bench: the compact range's append {size} disagrees")
        for level, index, digest in added:
            nodes[(level, index)] = digest
    levels = Levels(build_levels(b"".join(leaf_hash(e) for e in entries)))
    for size in (0, *range(1, 40), 64, 127, 128, 129, 255, 256, 257, 299, 300):
        want = root_hash(read, size)
        streamed = ProposedCompactRange()
        streamed.extend(entries[:size])
        got = (
            root_hash(levels.read, size) if size else want,
            streamed.root(),
            ProposedCompactRange(size, read).root(),
        )
        if any(g != want for g in got):
            raise SystemExit(f"bench: the bench's tree builders disagree at size {size}")


# -- timing -------------------------------------------------------------------------


class Method:
    """One way of processing the log, timed chunk by chunk, interleaved with the others."""

    def step(self, first: int, chunk: Sequence[bytes]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Timed too, after the last chunk."""


class RawHash(Method):
    def step(self, first: int, chunk: Sequence[bytes]) -> None:
        sha256 = hashlib.sha256
        for raw in chunk:
            sha256(raw).digest()


class DictAppends(Method):
    """leaf_hash + appended_nodes into a dict: merkle.build_nodes's loop, chunk by chunk."""

    def __init__(self, expect_root: bytes | None = None) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.read = dict_reader(self.nodes)
        self.size = 0
        self.expect_root = expect_root
        self.root = b""

    def step(self, first: int, chunk: Sequence[bytes]) -> None:
        nodes, read = self.nodes, self.read
        for size, raw in enumerate(chunk, first):
            for level, index, digest in appended_nodes(size, leaf_hash(raw), read):
                nodes[(level, index)] = digest
        self.size = first + len(chunk)

    def finish(self) -> None:
        if self.expect_root is not None:  # a verify: the comparison is part of it
            self.root = root_hash(self.read, self.size)
            if self.root != self.expect_root:
                raise SystemExit("bench: the full verify's root differs from the stored root")


class SqliteAppends(Method):
    """Catalog.append's Merkle half, one transaction per `batch` entries."""

    def __init__(self, store: SqliteNodes, batch: int, frontier: bool = False) -> None:
        self.store, self.batch = store, batch
        self.frontier = ProposedCompactRange() if frontier else None

    def step(self, first: int, chunk: Sequence[bytes]) -> None:
        store, batch, frontier = self.store, self.batch, self.frontier
        executemany = store.db.conn.executemany
        for start in range(0, len(chunk), batch):
            with store.db.atomic():
                for i in range(start, min(start + batch, len(chunk))):
                    if frontier is None:
                        store.append(first + i, chunk[i])
                    else:
                        executemany(INSERT_NODE, frontier.append(leaf_hash(chunk[i])))


class CompactRangeRoot(Method):
    def __init__(self, expect_root: bytes) -> None:
        self.range = ProposedCompactRange()
        self.expect_root = expect_root

    def step(self, first: int, chunk: Sequence[bytes]) -> None:
        self.range.extend(chunk)

    def finish(self) -> None:
        if self.range.root() != self.expect_root:
            raise SystemExit("bench: the compact range's root differs from the stored root")


def interleave(
    methods: Sequence[Method], entries: Sequence[bytes], chunk: int
) -> list[tuple[float, float]]:
    """(wall, CPU) seconds per method; chunk by chunk, each method in turn, the order rotating."""
    wall = [0.0] * len(methods)
    cpu = [0.0] * len(methods)
    clock, cpu_clock = time.perf_counter, time.process_time
    order = list(range(len(methods)))
    for k, first in enumerate(range(0, len(entries), chunk)):
        part = entries[first : first + chunk]
        shift = k % len(order)
        for m in order[shift:] + order[:shift]:
            t0, c0 = clock(), cpu_clock()
            methods[m].step(first, part)
            wall[m] += clock() - t0
            cpu[m] += cpu_clock() - c0
    for m in order:
        t0, c0 = clock(), cpu_clock()
        methods[m].finish()
        wall[m] += clock() - t0
        cpu[m] += cpu_clock() - c0
    return list(zip(wall, cpu, strict=True))


def time_per_commit(
    store: SqliteNodes, first: int, entries: Sequence[bytes]
) -> tuple[float, float]:
    """(wall, CPU) seconds for one transaction per entry, as a per-file ingest commits."""
    t0, c0 = time.perf_counter(), time.process_time()
    for size, raw in enumerate(entries, first):
        with store.db.atomic():
            store.append(size, raw)
    return time.perf_counter() - t0, time.process_time() - c0


def time_build_nodes(entries: Sequence[bytes], stored_root: bytes) -> Sample | None:
    """merkle.build_nodes over every leaf, root compared: Service._check_tree's own path.

    One call over the whole log (it cannot be interleaved); None when this
    dockd has no build_nodes.
    """
    build_nodes = getattr(merkle, "build_nodes", None)
    if build_nodes is None:
        return None
    t0, c0 = time.perf_counter(), time.process_time()
    nodes: dict[tuple[int, int], bytes] = build_nodes(leaf_hash(raw) for raw in entries)
    equal = root_hash(dict_reader(nodes), len(entries)) == stored_root
    sample = (time.perf_counter() - t0, time.process_time() - c0)
    if not equal:
        raise SystemExit("bench: merkle.build_nodes's root differs from the stored root")
    return sample


# -- memory -------------------------------------------------------------------------


class Peaks:
    """Peak RSS per phase: VmHWM, reset between phases through /proc/self/clear_refs."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.resettable = self._reset()

    @staticmethod
    def _reset() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    @staticmethod
    def _hwm_mib() -> float:
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def end(self, phase: str) -> None:
        self.phases[phase] = self._hwm_mib()
        if self.resettable:
            self._reset()

    @property
    def overall(self) -> float:
        return max(self.phases.values(), default=0.0)


# -- proofs -------------------------------------------------------------------------------


class CountingReader:
    def __init__(self, read: NodeReader) -> None:
        self.read = read
        self.count = 0

    def __call__(self, level: int, index: int) -> bytes:
        self.count += 1
        return self.read(level, index)


@dataclass
class ProofRun:
    store: str
    size: int
    kind: str  # inclusion | consistency
    total_ns: list[int] = field(default_factory=list)
    gen_ns: list[int] = field(default_factory=list)
    verify_ns: list[int] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)
    hashes: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def ms(values: list[int], q: float) -> float:
            return percentile(values, q) / 1e6

        return {
            "store": self.store,
            "size": self.size,
            "kind": self.kind,
            "queries": len(self.total_ns),
            "median_ms": ms(self.total_ns, 50),
            "p99_ms": ms(self.total_ns, 99),
            "max_ms": max(self.total_ns) / 1e6,
            "generate_median_ms": ms(self.gen_ns, 50),
            "verify_median_ms": ms(self.verify_ns, 50),
            "node_reads": {
                "min": min(self.reads),
                "median": statistics.median(self.reads),
                "max": max(self.reads),
            },
            "proof_hashes": {"median": statistics.median(self.hashes), "max": max(self.hashes)},
        }


def percentile(values: Sequence[int], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)])


def run_proofs(
    store: str, read: NodeReader, size: int, queries: int, rng: random.Random
) -> tuple[ProofRun, ProofRun, int]:
    """Inclusion and consistency proofs at tree size `size`; and root_hash's node reads.

    Timed: proof generation, then verification against the root. The leaf
    and the old root (the verifier's own) are looked up untimed; node reads
    are counted in a second, untimed generation of the same proof.
    """
    clock = time.perf_counter_ns
    counter = CountingReader(read)
    root = root_hash(counter, size)
    root_reads = counter.count

    inc = ProofRun(store, size, "inclusion")
    for index in [rng.randrange(size) for _ in range(queries)]:
        leaf = read(0, index)
        t0 = clock()
        proof = inclusion_proof(read, index, size)
        t1 = clock()
        ok = verify_inclusion(index, size, leaf, proof, root)
        t2 = clock()
        counter.count = 0
        if not ok or inclusion_proof(counter, index, size) != proof:
            raise SystemExit(f"bench: {store}: inclusion proof of {index} in {size} failed")
        inc.gen_ns.append(t1 - t0)
        inc.verify_ns.append(t2 - t1)
        inc.total_ns.append(t2 - t0)
        inc.reads.append(counter.count)
        inc.hashes.append(len(proof))

    con = ProofRun(store, size, "consistency")
    for old in [rng.randrange(1, size) for _ in range(queries)]:
        old_root = root_hash(read, old)
        t0 = clock()
        proof = consistency_proof(read, old, size)
        t1 = clock()
        ok = verify_consistency(old, size, old_root, root, proof)
        t2 = clock()
        counter.count = 0
        if not ok or consistency_proof(counter, old, size) != proof:
            raise SystemExit(f"bench: {store}: consistency proof {old} -> {size} failed")
        con.gen_ns.append(t1 - t0)
        con.verify_ns.append(t2 - t1)
        con.total_ns.append(t2 - t0)
        con.reads.append(counter.count)
        con.hashes.append(len(proof))
    return inc, con, root_reads


def pseudo_random_leaves(count: int, seed: int) -> bytes:
    """`count` 32-byte leaf hashes, reproducible; their values change no cost."""
    rng = random.Random(seed)
    step = 1 << 20  # leaves per randbytes call (getrandbits has a limit)
    return b"".join(rng.randbytes(HASH * min(step, count - i)) for i in range(0, count, step))


def worst_shape(size: int) -> int:
    """The largest 2**k - 1 <= size: every subtree on the right edge imperfect."""
    k = size.bit_length()
    return (1 << k) - 1 if (1 << k) - 1 <= size else (1 << (k - 1)) - 1


def copy_to_sqlite(levels: Levels, path: Path) -> float:
    """Every node of `levels` into a fresh merkle_nodes table (bulk, unjournaled)."""
    t0 = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.executescript(NODES_SCHEMA)
        conn.execute("BEGIN")
        for level in range(len(levels.levels)):
            conn.executemany(INSERT_NODE, levels.nodes(level))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return time.perf_counter() - t0


# -- the run ------------------------------------------------------------------------------


@contextlib.contextmanager
def work_dir(parent: Path | None) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockd-bench-merkle-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


Sample = tuple[float, float]  # (wall, CPU) seconds


def rate_row(count: int, samples: list[Sample], base: list[Sample] | None = None) -> dict[str, Any]:
    """Medians of `samples` (wall and CPU), the rate, and the wall-time ratio to `base`."""
    seconds = statistics.median(w for w, _ in samples)
    row: dict[str, Any] = {
        "seconds": seconds,
        "cpu_seconds": statistics.median(c for _, c in samples),
        "per_s": count / seconds,
        "samples": [w for w, _ in samples],
        "cpu_samples": [c for _, c in samples],
    }
    if base is not None:
        row["over_base"] = seconds / statistics.median(w for w, _ in base)
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    quiet: bool = args.json
    n: int = args.entries
    repeat: int = args.repeat
    chunk = args.batch * max(1, args.chunk // args.batch)

    def log(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    self_check(random.Random(args.seed))
    peaks = Peaks()
    with work_dir(args.dir) as work:
        log(f"generating {n:,} + {args.per_commit:,} log entries …")
        t0 = time.perf_counter()
        entries, prev = make_entries(1, n, b"0" * 64)
        extra, _ = make_entries(n + 1, args.per_commit, prev)
        entry_bytes = sum(map(len, entries)) / n
        log(f"  {entry_bytes:.0f} bytes each on average, {time.perf_counter() - t0:.1f} s")

        # -- 1. append: interleaved chunk by chunk, `repeat` times, fresh stores each time
        names = ["raw", "dict", "sqlite", "sqlite_frontier"][: 4 if args.diagnose else 3]
        samples: dict[str, list[Sample]] = {k: [] for k in names}
        samples["per_commit"] = []
        stored_root = b""
        store: SqliteNodes | None = None
        for r in range(repeat):
            log(f"1. append, run {r + 1}/{repeat}: " + ", ".join(names) + " …")
            if store is not None:
                store.remove()
            store = SqliteNodes(work / f"append-{r}.db")
            methods: list[Method] = [RawHash(), DictAppends(), SqliteAppends(store, args.batch)]
            diag: SqliteNodes | None = None
            if args.diagnose:
                diag = SqliteNodes(work / f"frontier-{r}.db")
                methods.append(SqliteAppends(diag, args.batch, frontier=True))
            for name, sample in zip(names, interleave(methods, entries, chunk), strict=True):
                samples[name].append(sample)
            d = methods[1]
            assert isinstance(d, DictAppends)
            stored_root = root_hash(store.node, n)
            roots = {root_hash(d.read, n), stored_root}
            if diag is not None:
                roots.add(root_hash(diag.node, n))
                diag.remove()
            if len(roots) != 1:
                raise SystemExit("bench: the node stores disagree on the root")
            del d, methods
            log("  " + ", ".join(f"{k} {samples[k][-1][0]:.2f} s" for k in names))
            log(f"  SQLite, one commit per entry, {args.per_commit:,} entries …")
            samples["per_commit"].append(time_per_commit(store, n, extra))
            log(f"  {samples['per_commit'][-1][0]:.2f} s")
        assert store is not None
        sql_nodes = store.count()
        db_bytes, wal_bytes = store.file_bytes()
        peaks.end("append")

        # -- 3. full verify (run now, while the entries are in memory)
        vnames = ["hash", "verify", "compact_range"][: 3 if args.diagnose else 2]
        vsamples: dict[str, list[Sample]] = {k: [] for k in vnames}
        for r in range(repeat):
            log(f"3. full verify, run {r + 1}/{repeat}: " + ", ".join(vnames) + " …")
            vmethods: list[Method] = [RawHash(), DictAppends(stored_root)]
            if args.diagnose:
                vmethods.append(CompactRangeRoot(stored_root))
            for name, sample in zip(vnames, interleave(vmethods, entries, chunk), strict=True):
                vsamples[name].append(sample)
            del vmethods
            built = time_build_nodes(entries, stored_root)
            if built is not None:
                vsamples.setdefault("build_nodes", []).append(built)
            log("  " + ", ".join(f"{k} {v[-1][0]:.2f} s" for k, v in vsamples.items()))
        del entries, extra
        peaks.end("verify")

        # -- 2. proofs
        rng = random.Random(args.seed)
        proofs: list[ProofRun] = []
        root_reads: dict[str, int] = {}

        def prove(store_name: str, read: NodeReader, size: int) -> None:
            log(f"2. proofs: {store_name}, tree size {size:,} …")
            inc, con, reads = run_proofs(store_name, read, size, args.queries, rng)
            proofs.extend((inc, con))
            root_reads[f"{store_name} @ {size}"] = reads

        prove("SQLite, Catalog.node", store.node, n)
        store.remove()
        peaks.end("proofs_sqlite")

        biggest = max(args.proof_sizes)
        worst = worst_shape(biggest)
        sizes = sorted({*args.proof_sizes, worst})
        log(f"building a compact tree of {biggest:,} pseudo-random leaf hashes …")
        t0 = time.perf_counter()
        tree = Levels(build_levels(pseudo_random_leaves(biggest, args.seed)))
        build_s = time.perf_counter() - t0
        log(f"  {build_s:.1f} s, {tree.nbytes / MiB:.0f} MiB")
        for size in sizes:
            prove("compact, bytes per level", tree.read, size)
        copy_s: float | None = None
        if args.sqlite_big:
            path = work / "big.db"
            log(f"copying it into SQLite ({tree.nbytes / MiB * 2.2:.0f} MiB or so) …")
            copy_s = copy_to_sqlite(tree, path)
            big = SqliteNodes(path)
            for size in sizes:
                prove("SQLite copy, Catalog.node", big.node, size)
            big.remove()
        del tree
        peaks.end("proofs_compact")

    per_commit = rate_row(args.per_commit, samples["per_commit"])
    batched = rate_row(n, samples["sqlite"], samples["raw"])
    per_commit["commit_ms_per_entry"] = (
        per_commit["seconds"] / args.per_commit - batched["seconds"] / n
    ) * 1e3
    dict_row = rate_row(n, samples["dict"], samples["raw"])
    append: dict[str, Any] = {
        "raw_sha256": rate_row(n, samples["raw"], samples["raw"]),
        "dict": dict_row,
        "sqlite_batched": {**batched, "commit_every": args.batch},
        "sqlite_per_commit": {**per_commit, "entries": args.per_commit},
        "diagnostic_sqlite_batched_compact_range": rate_row(
            n, samples["sqlite_frontier"], samples["raw"]
        )
        if args.diagnose
        else None,
    }
    verify_row = rate_row(n, vsamples["verify"], vsamples["hash"])
    verify: dict[str, Any] = {
        "hash": rate_row(n, vsamples["hash"], vsamples["hash"]),
        "verify": verify_row,
        "build_nodes": rate_row(n, vsamples["build_nodes"], vsamples["hash"])
        if "build_nodes" in vsamples
        else None,
        "diagnostic_compact_range": rate_row(n, vsamples["compact_range"], vsamples["hash"])
        if args.diagnose
        else None,
    }
    ratio: float = verify_row["over_base"]
    summaries = [p.summary() for p in proofs]
    # Judged: every row at the largest size and at the worst shape below it.
    judged = [s for s in summaries if s["size"] in (biggest, worst)]
    worst_p99 = max(s["p99_ms"] for s in judged)

    def at_least(value: float) -> dict[str, Any]:
        return {"value": value, "min": TARGET_APPEND_PER_S, "met": value >= TARGET_APPEND_PER_S}

    return {
        "command": " ".join([sys.executable, *sys.argv]),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "openssl": ssl.OPENSSL_VERSION,
        "cpus": os.cpu_count(),
        "loadavg_at_end": os.getloadavg(),
        "repeat": repeat,
        "chunk": chunk,
        "entries": n,
        "entry_bytes_mean": entry_bytes,
        "append": {
            **append,
            "sqlite_nodes": sql_nodes,
            "sqlite_db_bytes": db_bytes,
            "sqlite_wal_bytes": wal_bytes,
        },
        "proofs": {
            "queries": args.queries,
            "sizes": sizes,
            "worst_shape_size": worst,
            "compact_build_seconds": build_s,
            "sqlite_copy_seconds": copy_s,
            "root_hash_node_reads": root_reads,
            "runs": summaries,
        },
        "verify": {"entries": n, **verify},
        "peak_rss_mib": {"phases": peaks.phases, "overall": peaks.overall},
        "peak_rss_per_phase": peaks.resettable,
        "targets": {
            "append_dict_per_s": at_least(dict_row["per_s"]),
            "append_sqlite_batched_per_s": at_least(batched["per_s"]),
            "append_sqlite_per_commit_per_s": at_least(per_commit["per_s"]),
            "proof_p99_ms": {
                "value": worst_p99,
                "at_size": biggest,
                "max": TARGET_PROOF_MS,
                "met": worst_p99 <= TARGET_PROOF_MS,
            },
            "verify_over_hash": {
                "value": ratio,
                "max": TARGET_VERIFY_RATIO,
                "met": ratio <= TARGET_VERIFY_RATIO,
            },
        },
    }


# -- output ---------------------------------------------------------------------------------


def spread(samples: Sequence[float]) -> str:
    return f"{min(samples):.2f}-{max(samples):.2f}" if len(samples) > 1 else ""


def timing_header(ratio: str) -> str:
    return (
        f"{'method':<46} {'seconds':>7} {'range':>11} {'CPU s':>6} {'entries/s':>10} "
        f"{ratio:>7} {'target':>10}  verdict"
    )


def timing_row(name: str, r: dict[str, Any], target: str = "", met: bool | None = None) -> str:
    ratio = f"{r['over_base']:>7.2f}" if "over_base" in r else f"{'':>7}"
    line = (
        f"{name:<46} {r['seconds']:>7.2f} {spread(r['samples']):>11} {r['cpu_seconds']:>6.2f} "
        f"{r['per_s']:>10,.0f} {ratio} {target:>10}"
    )
    return f"{line}  {verdict(met)}" if met is not None else line.rstrip()


def print_table(res: dict[str, Any]) -> None:
    a, p, v, t = res["append"], res["proofs"], res["verify"], res["targets"]
    n = res["entries"]
    need = f">= {TARGET_APPEND_PER_S:,.0f}"
    print(
        f"log: {n:,} synthetic entries, {res['entry_bytes_mean']:.0f} bytes each on average "
        "(canonical-JSON-like, hash-chained)"
    )
    print(
        f"Python {res['python']}, SQLite {res['sqlite']}, {res['openssl']}, {res['cpus']} CPUs"
        f" (load average {res['loadavg_at_end'][0]:.2f} at the end)"
    )
    print(
        f"median of {res['repeat']} run(s) (range: the runs' spread); the methods of a table"
        f"\nrun interleaved, {res['chunk']:,} entries at a time, in rotating order\n"
    )

    batch = a["sqlite_batched"]["commit_every"]
    pc = a["sqlite_per_commit"]
    print(f"1. append, {n:,} entries")
    print(timing_header("x raw"))
    print(timing_row("raw SHA-256 of each entry (hashlib)", a["raw_sha256"]))
    for name, row, key in (
        ("leaf_hash + appended_nodes, dict store", a["dict"], "append_dict_per_s"),
        (
            f"  same, SQLite, a commit per {batch} entries",
            a["sqlite_batched"],
            "append_sqlite_batched_per_s",
        ),
        (
            f"  same, SQLite, a commit per entry ({pc['entries']:,})",
            pc,
            "append_sqlite_per_commit_per_s",
        ),
    ):
        print(timing_row(name, row, need, t[key]["met"]))
    if a["diagnostic_sqlite_batched_compact_range"]:
        print(
            timing_row(
                "  diagnostic: SQLite batched, CompactRange",
                a["diagnostic_sqlite_batched_compact_range"],
            )
        )
        print("    (the proposed merkle.CompactRange supplies the siblings: no SELECT per append)")
    print(
        f"  (a commit per entry costs {pc['commit_ms_per_entry']:.3f} ms more per entry: commit"
        " + WAL fsync;\n   the SQLite store holds"
        f" {a['sqlite_nodes']:,} nodes, {a['sqlite_db_bytes'] / MiB:.0f} MiB"
        f" + {a['sqlite_wal_bytes'] / MiB:.0f} MiB WAL; journal_mode=WAL, synchronous=FULL)"
    )

    print(
        f"\n2. proofs: {p['queries']} random queries per row; generation + verification, ms"
        "\n   (uniform leaf index / old size; the leaf and the old root are the verifier's,"
        " untimed)"
    )
    print(
        f"{'store':<26} {'tree size':>10} {'proof':<11} {'median':>7} {'p99':>7} {'max':>7} "
        f"{'gen':>6} {'verify':>6} {'reads med/max':>13} {'hashes':>6}"
    )
    for s in p["runs"]:
        reads = f"{s['node_reads']['median']:g}/{s['node_reads']['max']}"
        print(
            f"{s['store']:<26} {s['size']:>10,} {s['kind']:<11} {s['median_ms']:>7.3f} "
            f"{s['p99_ms']:>7.3f} {s['max_ms']:>7.3f} {s['generate_median_ms']:>6.3f} "
            f"{s['verify_median_ms']:>6.3f} {reads:>13} {s['proof_hashes']['median']:>6g}"
        )
    print(
        "  (gen, verify: medians; reads: NodeReader calls per proof generation; hashes: proof"
        f" length;\n   {p['worst_shape_size']:,} = 2^{p['worst_shape_size'].bit_length()}-1,"
        " the worst shape: every subtree on the right edge imperfect)"
    )
    for key, reads in p["root_hash_node_reads"].items():
        print(f"  root_hash reads, {key}: {reads}")
    copied = p["sqlite_copy_seconds"]
    print(
        f"  compact tree of {max(p['sizes']):,} leaves built in {p['compact_build_seconds']:.1f} s"
        + (f", copied into SQLite in {copied:.1f} s" if copied is not None else "")
    )

    print(f"\n3. full verify of the {v['entries']:,}-entry log (entry bytes in memory)")
    print(timing_header("x hash"))
    print(timing_row("hash every entry once (hashlib SHA-256)", v["hash"]))
    print(
        timing_row(
            "leaf hashes + appended_nodes into a fresh dict",
            v["verify"],
            f"<= {TARGET_VERIFY_RATIO}",
            t["verify_over_hash"]["met"],
        )
    )
    if v["build_nodes"]:
        print(timing_row("  same, via merkle.build_nodes (dockd verify)", v["build_nodes"]))
        print("    (one call over the whole log, after the interleaved rows: not interleaved)")
    if v["diagnostic_compact_range"]:
        print(timing_row("  diagnostic: CompactRange.extend", v["diagnostic_compact_range"]))
        print("    (the proposed merkle.CompactRange: leaves folded in one pass, no node store)")
    print("  (every root compared with the SQLite store's root: equal)")

    rss = res["peak_rss_mib"]
    phases = ", ".join(f"{k} {m:.0f}" for k, m in rss["phases"].items())
    how = "per phase" if res["peak_rss_per_phase"] else "cumulative: clear_refs refused"
    print(f"\npeak RSS of this process, MiB ({how}): {phases}; overall {rss['overall']:.0f}")

    print(f"\n{'figure':<50} {'value':>10} {'target':>10}  verdict")
    for key, label in (
        ("append_dict_per_s", "append, dict store, entries/s"),
        ("append_sqlite_batched_per_s", f"append, SQLite, a commit per {batch}, entries/s"),
        ("append_sqlite_per_commit_per_s", "append, SQLite, a commit per entry, entries/s"),
    ):
        print(f"{label:<50} {t[key]['value']:>10,.0f} {need:>10}  {verdict(t[key]['met'])}")
    pr = t["proof_p99_ms"]
    label = f"proof p99 at {pr['at_size']:,} leaves, worst row, ms"
    print(f"{label:<50} {pr['value']:>10.3f} {'<= ' + str(pr['max']):>10}  {verdict(pr['met'])}")
    vr = t["verify_over_hash"]
    print(
        f"{'full verify / hashing once (wall time)':<50} {vr['value']:>10.2f} "
        f"{'<= ' + str(vr['max']):>10}  {verdict(vr['met'])}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="100k entries, proofs at 1M leaves")
    parser.add_argument("--entries", type=int, default=None, help="log size (default 1,000,000)")
    parser.add_argument("--batch", type=int, default=1000, help="entries per SQLite commit")
    parser.add_argument(
        "--per-commit", type=int, default=10_000, help="entries appended one commit each"
    )
    parser.add_argument(
        "--proof-sizes",
        type=lambda s: [int(x.replace("_", "")) for x in s.split(",")],
        default=None,
        help="comma-separated tree sizes for the proofs (default 1000000,10000000)",
    )
    parser.add_argument("--queries", type=int, default=1000, help="random queries per proof row")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of append and verify")
    parser.add_argument(
        "--chunk", type=int, default=50_000, help="entries per turn when interleaving methods"
    )
    parser.add_argument(
        "--sqlite-big",
        action="store_true",
        help="also run the proofs on a SQLite copy of the compact tree (~80 s, ~1 GB per 10M)",
    )
    parser.add_argument(
        "--no-diagnose",
        dest="diagnose",
        action="store_false",
        help="skip the diagnostic rows (the proposed merkle.CompactRange)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="parent of the work directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=9162, help="seed for queries and leaves")
    args = parser.parse_args(argv)
    if args.entries is None:
        args.entries = 100_000 if args.quick else 1_000_000
    if args.proof_sizes is None:
        args.proof_sizes = [1_000_000] if args.quick else [1_000_000, 10_000_000]
    if (
        min(args.entries, *args.proof_sizes) < 2
        or min(args.batch, args.per_commit, args.queries, args.repeat, args.chunk) < 1
    ):
        parser.error("sizes need >= 2; --batch, --per-commit, --queries, --repeat, --chunk >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    res = run(args)
    if args.json:
        print(json.dumps(res, sort_keys=True))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
