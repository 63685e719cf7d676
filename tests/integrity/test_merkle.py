"""RFC 9162 §2.1 Merkle math (dockd/integrity/merkle.py), in the transparency-dev/merkle style.

1. Conformance: the CCTV RFC 6962 vectors (found beside the repo in
   shared/vectors/rfc6962-cctv): every valid case verifies, every invalid one is
   rejected, and the trees, roots and proofs we build ourselves equal the vectors'.
2. Properties: for random trees the root equals a naive recursive MTH, and the
   generated proofs equal the RFC's PATH / PROOF and verify.
3. Corruptions: a generator mutates every valid proof (bit flips, truncation,
   extra, reordered or wrong-length hashes, wrong index, sizes, leaf or roots) and
   every mutation is rejected with False, never an exception (fails closed).
4. Cost: an append reads O(log n) nodes and writes each node once; roots and
   proofs read O(log^2 n) stored nodes, never all the leaves.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockd.integrity.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    appended_nodes,
    build_nodes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_hash,
    roots_from_consistency_proof,
    verify_consistency,
    verify_inclusion,
)

# --------------------------------------------------------------------------- helpers

ZERO = bytes(32)


class Store:
    """A dict node store: counts reads, refuses to read a missing node or write one twice."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.size = 0
        self.reads = 0

    def read(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.nodes[(level, index)]

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        new = appended_nodes(self.size, leaf, self.read)
        for level, index, value in new:
            assert (level, index) not in self.nodes, f"node {(level, index)} written twice"
            self.nodes[(level, index)] = value
        self.size += 1
        return new

    def counted(self, fn: Callable[..., Any], *args: Any) -> tuple[Any, int]:
        """fn(self.read, *args) and the number of nodes it read."""
        before = self.reads
        result = fn(self.read, *args)
        return result, self.reads - before

    def leaf(self, index: int) -> bytes:
        return self.nodes[(0, index)]


def build(leaves: list[bytes]) -> Store:
    store = Store()
    for leaf in leaves:
        store.append(leaf)
    return store


def make_leaves(n: int, seed: bytes = b"") -> list[bytes]:
    return [leaf_hash(seed + b"leaf %d" % i) for i in range(n)]


# Naive RFC 9162 §2.1 reference: recursion over the leaf hashes, nothing stored.


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1), by counting."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1 (leaves already hashed)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _k(len(leaves))
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def rfc_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
    if len(leaves) <= 1:
        return []
    k = _k(len(leaves))
    if m < k:
        return [*rfc_path(m, leaves[:k]), mth(leaves[k:])]
    return [*rfc_path(m - k, leaves[k:]), mth(leaves[:k])]


def rfc_proof(m: int, leaves: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1 (empty for m == 0 and m == n)."""

    def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
        if m == len(d):
            return [] if b else [mth(d)]
        k = _k(len(d))
        if m <= k:
            return [*subproof(m, d[:k], b), mth(d[k:])]
        return [*subproof(m - k, d[k:], False), mth(d[:k])]

    return [] if m in (0, len(leaves)) else subproof(m, leaves, True)


def path_shape(m: int, n: int) -> tuple[str, ...]:
    """Which side each hash of PATH(m, D[n]) sits on: all a verifier can know."""
    if n <= 1:
        return ()
    k = _k(n)
    return (*path_shape(m, k), "R") if m < k else (*path_shape(m - k, n - k), "L")


def proof_shape(m: int, n: int, b: bool = True) -> tuple[str, ...]:
    """Sides of the hashes of SUBPROOF(m, D[n], b) ("S": the old subtree itself)."""
    if m == n:
        return () if b else ("S",)
    k = _k(n)
    return (*proof_shape(m, k, b), "R") if m <= k else (*proof_shape(m - k, n - k, False), "L")


def flip(value: bytes, bit: int = 0) -> bytes:
    out = bytearray(value)
    out[(bit // 8) % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


def replaced(proof: list[bytes], i: int, value: bytes) -> list[bytes]:
    return [*proof[:i], value, *proof[i + 1 :]]


def swapped(proof: list[bytes], i: int, j: int) -> list[bytes]:
    out = list(proof)
    out[i], out[j] = out[j], out[i]
    return out


# ------------------------------------------------------------ corruption generators
#
# As in transparency-dev/merkle's verifier_test.go: every valid proof is mutated in
# every way below and each mutation must be rejected. The only mutations left out
# are those that do not change the claim: a tree size whose proof has the same
# shape (see test_a_proof_binds_its_shape_not_its_size) and, for an empty old tree,
# the new root (every tree extends the empty one).

Inclusion = tuple[int, int, bytes, list[bytes], bytes]  # index, size, leaf, proof, root
Consistency = tuple[int, int, bytes, bytes, list[bytes]]  # old, new, old root, new root, proof


def _hash_corruptions(
    proof: list[bytes], ends: dict[str, bytes]
) -> Iterator[tuple[str, list[bytes]]]:
    """Mutations of the proof alone; `ends` are real hashes to smuggle in."""
    for i, p in enumerate(proof):
        for bit in (0, 7, 131, 255):
            yield f"flip bit {bit} of hash {i}", replaced(proof, i, flip(p, bit))
        for length in (0, 1, 31, 33, 64):
            yield f"hash {i} has {length} bytes", replaced(proof, i, (p * 3)[:length])
    if proof:
        yield "drop the last hash", proof[:-1]
        yield "drop the first hash", proof[1:]
        yield "empty proof", []
        yield "repeat the last hash", [*proof, proof[-1]]
        yield "repeat the first hash", [proof[0], *proof]
    extras = {**ends, "zeros": ZERO, "31 bytes": ZERO[:31], "33 bytes": bytes(33)}
    for name, extra in extras.items():
        yield f"append {name}", [*proof, extra]
        yield f"prepend {name}", [extra, *proof]
    for i in range(len(proof) - 1):
        yield f"swap hashes {i} and {i + 1}", swapped(proof, i, i + 1)
    if len(proof) > 2:
        yield "swap the first and last hash", swapped(proof, 0, len(proof) - 1)


def inclusion_corruptions(
    index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> Iterator[tuple[str, Inclusion]]:
    """Every mutation of a valid inclusion proof that a verifier must reject."""
    for label, bad in _hash_corruptions(proof, {"leaf": leaf, "root": root}):
        yield label, (index, size, leaf, bad, root)
    for wrong in {index - 1, index + 1, index ^ 1, index ^ 2, size, size + 1, -1}:
        if wrong != index:
            yield f"leaf index {wrong}", (wrong, size, leaf, proof, root)
    for wrong in {size - 1, size + 1, size * 2, size // 2, index, 0, -1}:
        if wrong == size or (
            0 <= index < wrong and path_shape(index, wrong) == path_shape(index, size)
        ):
            continue
        yield f"tree size {wrong}", (index, wrong, leaf, proof, root)
    for name, bad in {
        "flipped leaf": flip(leaf),
        "leaf of other data": leaf_hash(b"not in the tree"),
        "leaf = root": root,
        "leaf = empty root": EMPTY_ROOT,
        "unhashed leaf": b"leaf %d" % index,
        "leaf 31 bytes": leaf[:31],
    }.items():
        if bad != leaf:
            yield name, (index, size, bad, proof, root)
    for name, bad in {
        "flipped root": flip(root, 255),
        "root = leaf": leaf,
        "root = empty root": EMPTY_ROOT,
        "root = zeros": ZERO,
        "root 31 bytes": root[:31],
        "root 33 bytes": root + b"\0",
    }.items():
        if bad != root:
            yield name, (index, size, leaf, proof, bad)


def consistency_corruptions(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> Iterator[tuple[str, Consistency]]:
    """Every mutation of a valid consistency proof that a verifier must reject."""
    roots = {"old root": old_root, "new root": new_root}
    for label, bad in _hash_corruptions(proof, roots):
        yield label, (old, new, old_root, new_root, bad)
    for wrong in {old - 1, old + 1, old ^ 2, 0, new, new + 1, -1}:
        if wrong != old:
            yield f"old size {wrong}", (wrong, new, old_root, new_root, proof)
    for wrong in {new - 1, new + 1, new * 2, new // 2, old - 1, 0, -1}:
        if wrong == new or old == 0:
            continue
        if 0 < old < wrong and proof_shape(old, wrong) == proof_shape(old, new):
            continue
        yield f"new size {wrong}", (old, wrong, old_root, new_root, proof)
    if old_root != new_root:
        yield "swapped roots", (old, new, new_root, old_root, proof)
        yield "old root = new root", (old, new, new_root, new_root, proof)
    for name, bad in {
        "flipped old root": flip(old_root),
        "old root = empty root": EMPTY_ROOT,
        "old root = zeros": ZERO,
        "old root 31 bytes": old_root[:31],
        "old root 33 bytes": old_root + b"\0",
    }.items():
        if bad != old_root:
            yield name, (old, new, bad, new_root, proof)
    if old == 0:
        return
    for name, bad in {
        "flipped new root": flip(new_root, 255),
        "new root = old root": old_root,
        "new root = empty root": EMPTY_ROOT,
        "new root = zeros": ZERO,
        "new root 31 bytes": new_root[:31],
        "new root 33 bytes": new_root + b"\0",
    }.items():
        if bad != new_root:
            yield name, (old, new, old_root, bad, proof)


def accepted_inclusion_corruptions(store: Store, index: int, size: int) -> list[str]:
    leaf, root = store.leaf(index), root_hash(store.read, size)
    proof = inclusion_proof(store.read, index, size)
    assert verify_inclusion(index, size, leaf, proof, root), "the uncorrupted proof must verify"
    return [
        f"{label} (index {index}, size {size})"
        for label, case in inclusion_corruptions(index, size, leaf, proof, root)
        if verify_inclusion(*case) is not False
    ]


def accepted_consistency_corruptions(store: Store, old: int, new: int) -> list[str]:
    old_root, new_root = root_hash(store.read, old), root_hash(store.read, new)
    proof = consistency_proof(store.read, old, new)
    assert verify_consistency(old, new, old_root, new_root, proof), "valid proof must verify"
    return [
        f"{label} ({old} -> {new})"
        for label, case in consistency_corruptions(old, new, old_root, new_root, proof)
        if verify_consistency(*case) is not False
    ]


@functools.cache
def shared_tree(n: int) -> Store:
    """One tree of n distinct leaves; every prefix of it is the tree of that size."""
    return build(make_leaves(n))


# --------------------------------------------------------------- 1. CCTV conformance

# A copy of shared/vectors/rfc6962-cctv lives beside the tests, so that a clone
# alone runs them; test_vendored_vectors_match_shared keeps the copy honest.
VECTORS = Path(__file__).resolve().parent / "vectors" / "rfc6962-cctv"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "rfc6962-cctv"
MISSING = f"CCTV Merkle vectors not found at {VECTORS}"


def test_vendored_vectors_match_shared() -> None:
    assert VECTORS.is_dir(), MISSING
    if not SHARED.is_dir():
        pytest.skip(f"no shared folder at {SHARED} to compare with")
    for path in SHARED.iterdir():
        assert (VECTORS / path.name).read_bytes() == path.read_bytes(), path.name


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _load(name: str) -> list[dict[str, Any]]:
    path = VECTORS / name
    return json.loads(path.read_text("utf-8")) if path.is_file() else []


def _cases(name: str, describe: Callable[[dict[str, Any]], str]) -> list[Any]:
    cases = _load(name)
    if not cases:
        return [pytest.param(None, id="missing", marks=pytest.mark.skip(reason=MISSING))]
    return [
        pytest.param(c, id=f"{i}: {c.get('comment', 'valid')} {describe(c)}")
        for i, c in enumerate(cases)
    ]


def _inc_id(c: dict[str, Any]) -> str:
    return f"index={c['leaf_index']} size={c['tree_size']}"


def _con_id(c: dict[str, Any]) -> str:
    return f"{c['old_size']}->{c['new_size']}"


def _inclusion(c: dict[str, Any]) -> Inclusion:
    path = [_b64(h) for h in c["inclusion_path"]]
    return c["leaf_index"], c["tree_size"], _b64(c["leaf_hash"]), path, _b64(c["root_hash"])


def _consistency(c: dict[str, Any]) -> Consistency:
    path = [_b64(h) for h in c["consistency_path"]]
    return c["old_size"], c["new_size"], _b64(c["old_root"]), _b64(c["new_root"]), path


@pytest.fixture(scope="module")
def cctv_tree() -> tuple[Store, list[dict[str, Any]]]:
    """The vectors' tree, appended leaf by leaf into a dict node store."""
    rows = _load("merkle_tree.json")
    if not rows:
        pytest.skip(MISSING)
    store = Store()
    for row in rows:
        store.append(leaf_hash(row["leaf_data"].encode("utf-8")))
    return store, rows


def test_hashes_are_domain_separated_as_in_the_rfc() -> None:
    """Leaves hash under 0x00 and nodes under 0x01, so a node is never taken for a leaf."""
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert a == hashlib.sha256(b"\x00a").digest()
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert leaf_hash(a + b) != node_hash(a, b)
    assert node_hash(a, b) != node_hash(b, a)


def test_vector_tree_roots_when_built_incrementally(
    cctv_tree: tuple[Store, list[dict[str, Any]]],
) -> None:
    """Appending leaf k+1 yields the vectors' root of k+1 leaves, and older roots don't move."""
    store, rows = cctv_tree
    fresh = Store()
    for k, row in enumerate(rows):
        leaf = leaf_hash(row["leaf_data"].encode("utf-8"))
        assert leaf == _b64(row["leaf_hash"]), f"leaf {k}"
        fresh.append(leaf)
        assert root_hash(fresh.read, k + 1) == _b64(row["root_hash"]), f"root of {k + 1} leaves"
    assert fresh.nodes == store.nodes
    for k, row in enumerate(rows):
        assert root_hash(store.read, k + 1) == _b64(row["root_hash"]), f"old root {k + 1}"
    assert root_hash(store.read, 0) == EMPTY_ROOT


@pytest.mark.parametrize("case", _cases("inclusion-valid.json", _inc_id))
def test_valid_inclusion_vectors_verify(
    case: dict[str, Any], cctv_tree: tuple[Store, list[dict[str, Any]]]
) -> None:
    """Every valid vector verifies, and our tree gives the same leaf, root and path."""
    index, size, leaf, path, root = _inclusion(case)
    assert verify_inclusion(index, size, leaf, path, root)
    assert root_from_inclusion_proof(index, size, leaf, path) == root
    store, _ = cctv_tree
    assert store.leaf(index) == leaf
    assert root_hash(store.read, size) == root
    assert inclusion_proof(store.read, index, size) == path


@pytest.mark.parametrize("case", _cases("inclusion-invalid.json", _inc_id))
def test_invalid_inclusion_vectors_fail_closed(case: dict[str, Any]) -> None:
    """Every invalid vector is rejected with False, never an exception."""
    assert verify_inclusion(*_inclusion(case)) is False


@pytest.mark.parametrize("case", _cases("consistency-valid.json", _con_id))
def test_valid_consistency_vectors_verify(
    case: dict[str, Any], cctv_tree: tuple[Store, list[dict[str, Any]]]
) -> None:
    """Every valid vector verifies, and our tree gives the same roots and proof."""
    old, new, old_root, new_root, path = _consistency(case)
    assert verify_consistency(old, new, old_root, new_root, path)
    if 0 < old < new:
        assert roots_from_consistency_proof(old, new, old_root, path) == (old_root, new_root)
    store, _ = cctv_tree
    assert root_hash(store.read, old) == old_root
    assert root_hash(store.read, new) == new_root
    assert consistency_proof(store.read, old, new) == path


@pytest.mark.parametrize("case", _cases("consistency-invalid.json", _con_id))
def test_invalid_consistency_vectors_fail_closed(case: dict[str, Any]) -> None:
    """Every invalid vector is rejected with False, never an exception."""
    assert verify_consistency(*_consistency(case)) is False


def test_vector_valid_proofs_survive_the_corruption_generator(
    cctv_tree: tuple[Store, list[dict[str, Any]]],
) -> None:
    """The generator applied to the vectors' own valid proofs: all mutations fail closed."""
    accepted = []
    for case in _load("inclusion-valid.json"):
        accepted += [
            lb for lb, bad in inclusion_corruptions(*_inclusion(case)) if verify_inclusion(*bad)
        ]
    for case in _load("consistency-valid.json"):
        accepted += [
            lb
            for lb, bad in consistency_corruptions(*_consistency(case))
            if verify_consistency(*bad)
        ]
    assert accepted == []


# ---------------------------------------------------------------- 2. properties

TREE_SIZES = st.integers(1, 300)


def test_every_small_tree_matches_the_naive_reference() -> None:
    """Exhaustive up to 64 leaves: every root, PATH and PROOF equal the RFC recursion."""
    leaves = make_leaves(64)
    store = shared_tree(64)
    for n in range(65):
        assert root_hash(store.read, n) == mth(leaves[:n]), f"root of {n}"
        for m in range(n):
            assert inclusion_proof(store.read, m, n) == rfc_path(m, leaves[:n]), (m, n)
        for m in range(n + 1):
            assert consistency_proof(store.read, m, n) == rfc_proof(m, leaves[:n]), (m, n)


@given(size=TREE_SIZES, seed=st.binary(max_size=8), data=st.data())
def test_root_equals_naive_mth(size: int, seed: bytes, data: st.DataObject) -> None:
    """The root from stored perfect subtrees equals MTH recomputed from every leaf."""
    leaves = make_leaves(size, seed)
    store = build(leaves)
    assert root_hash(store.read, size) == mth(leaves)
    old = data.draw(st.integers(0, size), label="old size")
    assert root_hash(store.read, old) == mth(leaves[:old])


@given(size=TREE_SIZES, seed=st.binary(max_size=8), data=st.data())
def test_generated_inclusion_proofs_verify(size: int, seed: bytes, data: st.DataObject) -> None:
    """A proof we generate is the RFC's PATH and verifies against the tree's root."""
    leaves = make_leaves(size, seed)
    store = build(leaves)
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(store.read, index, size)
    assert proof == rfc_path(index, leaves)
    assert verify_inclusion(index, size, leaves[index], proof, mth(leaves))


@given(size=TREE_SIZES, seed=st.binary(max_size=8), data=st.data())
def test_generated_consistency_proofs_verify(size: int, seed: bytes, data: st.DataObject) -> None:
    """A proof we generate for old <= new is the RFC's PROOF and verifies both roots."""
    leaves = make_leaves(size, seed)
    store = build(leaves)
    old = data.draw(st.integers(0, size), label="old size")
    proof = consistency_proof(store.read, old, size)
    assert proof == rfc_proof(old, leaves)
    assert verify_consistency(old, size, mth(leaves[:old]), mth(leaves), proof)


@given(
    leaves=st.lists(st.binary(max_size=3).map(leaf_hash), min_size=1, max_size=40), data=st.data()
)
def test_repeated_leaves_still_verify(leaves: list[bytes], data: st.DataObject) -> None:
    """Equal leaves (the same recording twice) break nothing: proofs still match and verify."""
    store = build(leaves)
    n = len(leaves)
    index = data.draw(st.integers(0, n - 1), label="index")
    old = data.draw(st.integers(0, n), label="old size")
    assert inclusion_proof(store.read, index, n) == rfc_path(index, leaves)
    assert consistency_proof(store.read, old, n) == rfc_proof(old, leaves)
    root = mth(leaves)
    assert verify_inclusion(index, n, leaves[index], rfc_path(index, leaves), root)
    assert verify_consistency(old, n, mth(leaves[:old]), root, rfc_proof(old, leaves))


# ---------------------------------------------------------------- 3. corruptions


@pytest.mark.parametrize("size", range(1, 41))
def test_every_corrupted_inclusion_proof_fails_closed(size: int) -> None:
    """All indices of a tree of `size`: every mutation of the valid proof returns False."""
    store = shared_tree(40)
    accepted = [
        a for index in range(size) for a in accepted_inclusion_corruptions(store, index, size)
    ]
    assert accepted == []


@pytest.mark.parametrize("new", range(41))
def test_every_corrupted_consistency_proof_fails_closed(new: int) -> None:
    """All old sizes 0..new: every mutation of the valid proof returns False."""
    store = shared_tree(40)
    accepted = [
        a for old in range(new + 1) for a in accepted_consistency_corruptions(store, old, new)
    ]
    assert accepted == []


@given(size=TREE_SIZES, data=st.data())
def test_corruptions_fail_closed_in_larger_trees(size: int, data: st.DataObject) -> None:
    """The generator on random proofs in trees up to 300 leaves."""
    store = shared_tree(300)
    index = data.draw(st.integers(0, size - 1), label="index")
    old = data.draw(st.integers(0, size), label="old size")
    assert accepted_inclusion_corruptions(store, index, size) == []
    assert accepted_consistency_corruptions(store, old, size) == []


@given(size=st.integers(2, 300), data=st.data())
def test_any_flipped_bit_fails_closed(size: int, data: st.DataObject) -> None:
    """Any single bit of any hash of either proof, not just the generator's chosen bits."""
    store = shared_tree(300)
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(store.read, index, size)
    i = data.draw(st.integers(0, len(proof) - 1), label="which hash")
    bit = data.draw(st.integers(0, 255), label="bit")
    root = root_hash(store.read, size)
    assert not verify_inclusion(
        index, size, store.leaf(index), replaced(proof, i, flip(proof[i], bit)), root
    )
    old = data.draw(st.integers(1, size - 1), label="old size")
    cproof = consistency_proof(store.read, old, size)
    j = data.draw(st.integers(0, len(cproof) - 1), label="which consistency hash")
    old_root = root_hash(store.read, old)
    bad = replaced(cproof, j, flip(cproof[j], bit))
    assert not verify_consistency(old, size, old_root, root, bad)


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_wrong_length_proof_hashes_fail_closed(length: int) -> None:
    """A 31- or 33-byte 'hash' anywhere in a proof: verify says False, root_from says ProofError."""
    store = shared_tree(40)
    bad_hash = bytes(range(length))
    for index, size in [(0, 2), (5, 11), (10, 11), (0, 40), (39, 40)]:
        proof = inclusion_proof(store.read, index, size)
        leaf, root = store.leaf(index), root_hash(store.read, size)
        for i in range(len(proof)):
            bad = replaced(proof, i, bad_hash)
            assert verify_inclusion(index, size, leaf, bad, root) is False
            with pytest.raises(ProofError):
                root_from_inclusion_proof(index, size, leaf, bad)
    for old, new in [(1, 2), (4, 11), (7, 11), (32, 40), (39, 40)]:
        proof = consistency_proof(store.read, old, new)
        old_root, new_root = root_hash(store.read, old), root_hash(store.read, new)
        for i in range(len(proof)):
            bad = replaced(proof, i, bad_hash)
            assert verify_consistency(old, new, old_root, new_root, bad) is False
            with pytest.raises(ProofError):
                roots_from_consistency_proof(old, new, old_root, bad)


def test_malformed_claims_raise_proof_error_only() -> None:
    """Sizes and lengths a proof cannot have raise ProofError, not a bare exception."""
    store = shared_tree(40)
    leaf, proof = store.leaf(0), inclusion_proof(store.read, 0, 8)
    calls: list[Callable[[], object]] = [
        lambda: root_hash(store.read, -1),
        lambda: inclusion_proof(store.read, 8, 8),
        lambda: inclusion_proof(store.read, -1, 8),
        lambda: inclusion_proof(store.read, 0, 0),
        lambda: consistency_proof(store.read, 9, 8),
        lambda: consistency_proof(store.read, -1, 8),
        lambda: root_from_inclusion_proof(8, 8, leaf, proof),
        lambda: root_from_inclusion_proof(0, 8, leaf, proof[:-1]),
        lambda: root_from_inclusion_proof(0, 8, leaf, [*proof, ZERO]),
        lambda: roots_from_consistency_proof(0, 8, EMPTY_ROOT, proof),
        lambda: roots_from_consistency_proof(8, 8, leaf, proof),
        lambda: roots_from_consistency_proof(3, 8, leaf, []),
    ]
    for call in calls:
        with pytest.raises(ProofError):
            call()


def test_a_proof_binds_its_shape_not_its_size() -> None:
    """Why the generator skips some size changes: the RFC 9162 verifier only learns the
    size through the proof's shape, so a proof for 7 leaves also "proves" its leaf
    under size 8 with the same root. A verifier must take size and root together from
    one signed checkpoint, never the size from one place and the root from another."""
    store = shared_tree(40)
    root7 = root_hash(store.read, 7)
    proof = inclusion_proof(store.read, 0, 7)
    assert path_shape(0, 7) == path_shape(0, 8)
    assert verify_inclusion(0, 8, store.leaf(0), proof, root7)
    cproof = consistency_proof(store.read, 4, 7)
    assert proof_shape(4, 7) == proof_shape(4, 8)
    assert verify_consistency(4, 8, root_hash(store.read, 4), root7, cproof)
    # A leaf index is bound: its neighbour under the same proof and root fails.
    assert not verify_inclusion(1, 7, store.leaf(0), proof, root7)


# ---------------------------------------------------------------- 4. cost

BIG = 2**16


@functools.cache
def big_tree() -> tuple[Store, list[int], list[int]]:
    """2**16 synthetic leaf hashes; per append: nodes read, and nodes stored after it."""
    store = Store()
    reads, stored = [], [0]
    for i in range(BIG):
        before = store.reads
        store.append(i.to_bytes(32, "big"))
        reads.append(store.reads - before)
        stored.append(len(store.nodes))
    return store, reads, stored


def _trailing_ones(n: int) -> int:
    return (n ^ (n + 1)).bit_length() - 1


def test_append_reads_log_n_nodes_and_writes_each_once() -> None:
    """Appending leaf number s reads exactly its trailing-ones count of left siblings
    (<= log2(n) + 1 for the new size n), writes the leaf plus one node per read, never
    overwrites a node, and the store then holds 2n - popcount(n) perfect subtrees."""
    store, reads, stored = big_tree()
    for s, count in enumerate(reads):
        n = s + 1
        assert count == _trailing_ones(s), f"append #{s}"
        assert count <= math.log2(n) + 1, f"append #{s}"
    for n, count in enumerate(stored):
        assert count == 2 * n - n.bit_count(), f"after {n} appends"
        if n:
            assert count - stored[n - 1] == reads[n - 1] + 1, f"writes of append #{n - 1}"
    assert len(store.nodes) == 2 * BIG - 1


def _sample_sizes() -> list[int]:
    rng = random.Random(9162)
    sizes = {n for e in range(17) for n in (2**e - 1, 2**e, 2**e + 1)}
    sizes |= {rng.randrange(1, BIG + 1) for _ in range(40)}
    return sorted(n for n in sizes if 1 <= n <= BIG)


def test_roots_and_proofs_read_at_most_log_squared_nodes() -> None:
    """Up to 2**16 leaves: a root reads popcount(n) nodes, an inclusion or consistency
    proof at most (log2(n) + 1)**2 (in fact 2 * (log2(n) + 1): only one sibling on a
    path can be an imperfect subtree), and every proof read that way verifies."""
    store, _, _ = big_tree()
    rng = random.Random(6962)
    for n in _sample_sizes():
        bound = (math.log2(n) + 1) ** 2
        tight = 2 * (math.log2(n) + 1)
        root, count = store.counted(root_hash, n)
        assert count == n.bit_count(), f"root of {n}"
        for index in {0, 1, n // 2, n - 2, n - 1, *(rng.randrange(n) for _ in range(4))}:
            if not 0 <= index < n:
                continue
            proof, count = store.counted(inclusion_proof, index, n)
            assert count <= bound, f"inclusion {index} in {n}: {count} reads"
            assert count <= tight, f"inclusion {index} in {n}: {count} reads"
            assert verify_inclusion(index, n, store.leaf(index), proof, root)
        for old in {
            1,
            n // 2,
            n - 1,
            2 ** (n.bit_length() - 1),
            *(rng.randrange(1, n + 1) for _ in range(4)),
        }:
            if not 0 < old < n:
                continue
            proof, count = store.counted(consistency_proof, old, n)
            assert count <= bound, f"consistency {old} -> {n}: {count} reads"
            assert count <= tight, f"consistency {old} -> {n}: {count} reads"
            old_root = root_hash(store.read, old)
            assert verify_consistency(old, n, old_root, root, proof)


@pytest.mark.parametrize("n", [1000, 1023, 1025])
def test_every_proof_of_a_mid_sized_tree_reads_at_most_log_squared_nodes(n: int) -> None:
    """Exhaustive over every index and old size of one tree: no worst case hides."""
    store, _, _ = big_tree()
    bound = (math.log2(n) + 1) ** 2
    worst_inclusion = max(store.counted(inclusion_proof, i, n)[1] for i in range(n))
    worst_consistency = max(store.counted(consistency_proof, m, n)[1] for m in range(n + 1))
    assert worst_inclusion <= bound
    assert worst_consistency <= bound
    assert max(worst_inclusion, worst_consistency) <= 2 * (math.log2(n) + 1)


@given(st.integers(0, 300), st.integers(0, 40))
def test_compact_range_appends_exactly_what_the_store_would(start: int, more: int) -> None:
    """CompactRange (the catalog's in-memory right edge) equals appended_nodes/root_hash."""
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(start + more)]
    nodes = build_nodes(leaves[:start])
    edge = CompactRange(start, lambda lv, ix: nodes[(lv, ix)])
    for size in range(start, start + more):
        expected = appended_nodes(size, leaves[size], lambda lv, ix: nodes[(lv, ix)])
        assert edge.append(leaves[size]) == expected
        nodes.update({(lv, ix): h for lv, ix, h in expected})
        assert edge.root() == root_hash(lambda lv, ix: nodes[(lv, ix)], size + 1)
