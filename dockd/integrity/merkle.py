"""RFC 9162 §2.1 Merkle tree math, pure: hashes and sizes in, hashes out.

Storage is the caller's: every function that needs tree nodes takes a
`NodeReader`, `read(level, index)` returning the hash of the perfect
subtree covering leaves [index * 2**level, (index + 1) * 2**level).
Appending a leaf reports the nodes it completes (`appended_nodes`), so a
store that keeps them can answer roots and proofs by reading O(log n)
perfect-subtree hashes, never re-hashing the leaves.

The inclusion and consistency verifiers have a deliberate twin in
integrity/standalone_verify.py (verify.py on discs and in log exports, which
must run without dockd); tests hold the two to the same verdicts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from dockd.errors import VerifyError

NodeReader = Callable[[int, int], bytes]

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(VerifyError, ValueError):
    """A proof or tree size is malformed for the claimed sizes."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n. Requires n > 1."""
    return 1 << ((n - 1).bit_length() - 1)


def appended_nodes(size: int, leaf: bytes, read: NodeReader) -> list[tuple[int, int, bytes]]:
    """Nodes completed by appending `leaf` as leaf number `size` (0-based).

    Returns [(level, index, hash)], the leaf itself first. Reads the left
    siblings it pairs with: one per trailing 1 bit of `size`, at most log2(size + 1).
    """
    nodes = [(0, size, leaf)]
    level, index, current = 0, size, leaf
    while index & 1:
        current = node_hash(read(level, index - 1), current)
        level, index = level + 1, index >> 1
        nodes.append((level, index, current))
    return nodes


def build_nodes(leaves: Iterable[bytes]) -> dict[tuple[int, int], bytes]:
    """Every perfect-subtree node of the tree over `leaves` (leaf hashes), in memory."""
    nodes: dict[tuple[int, int], bytes] = {}
    for size, leaf in enumerate(leaves):
        for level, index, digest in appended_nodes(size, leaf, lambda lv, ix: nodes[(lv, ix)]):
            nodes[(level, index)] = digest
    return nodes


class CompactRange:
    """The right edge of the tree of the first `size` leaves: O(log n) hashes, no store.

    A tree of size n is the perfect subtrees of the set bits of n, largest
    (leftmost) first; `hashes` holds their hashes in that order. The left
    siblings an appended leaf pairs with are exactly the last of them, so
    `append` reads nothing (unlike `appended_nodes`, which reads them), and
    the root is a fold of them.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, read: NodeReader | None = None) -> None:
        """The range of the first `size` leaves of a stored tree: popcount(size) reads."""
        if size < 0:
            raise ProofError("tree size must not be negative")
        self.size = size
        self.hashes: list[bytes] = []
        if size == 0:
            return
        if read is None:
            raise ProofError("a non-empty compact range is read from a NodeReader")
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                self.hashes.append(read(level, start >> level))
                start += 1 << level

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """`appended_nodes(self.size, leaf, read)` without a read; the range grows by one."""
        size = self.size
        nodes = [(0, size, leaf)]
        level, index, current = 0, size, leaf
        while index & 1:
            current = node_hash(self.hashes.pop(), current)
            level, index = level + 1, index >> 1
            nodes.append((level, index, current))
        self.hashes.append(current)
        self.size = size + 1
        return nodes

    def extend(self, entries: Iterable[bytes]) -> None:
        """Append `leaf_hash(entry)` for every entry, keeping no nodes (a verifier's pass)."""
        sha256 = hashlib.sha256  # inlined leaf_hash and node_hash: this loop is the cost
        push, pop = self.hashes.append, self.hashes.pop
        size = self.size
        for entry in entries:
            current = sha256(b"\x00" + entry).digest()
            index = size
            while index & 1:
                current = sha256(b"\x01" + pop() + current).digest()
                index >>= 1
            push(current)
            size += 1
        self.size = size

    def root(self) -> bytes:
        """`root_hash(read, self.size)`, from the range alone."""
        if not self.hashes:
            return EMPTY_ROOT
        current = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            current = node_hash(left, current)
        return current


def subtree_hash(read: NodeReader, start: int, end: int) -> bytes:
    """MTH of leaves [start, end), where start is aligned as in an RFC 9162 subtree.

    Requires 0 <= start < end and that [start, end) is a subtree the RFC
    recursion visits (start a multiple of the largest power of two <= end - start).
    """
    size = end - start
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return read(level, start >> level)
    k = _split(size)
    return node_hash(subtree_hash(read, start, start + k), subtree_hash(read, start + k, end))


def root_hash(read: NodeReader, size: int) -> bytes:
    """MTH of the first `size` leaves. Requires size >= 0."""
    if size < 0:
        raise ProofError("tree size must not be negative")
    return EMPTY_ROOT if size == 0 else subtree_hash(read, 0, size)


def inclusion_proof(read: NodeReader, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1. Requires 0 <= index < size."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    # Walk down from the root, collecting the sibling subtree at each split.
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(subtree_hash(read, start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(read, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(read: NodeReader, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1. Requires 0 <= old <= new."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"cannot prove size {old_size} consistent with size {new_size}")
    if old_size in (0, new_size):
        return []
    path: list[bytes] = []

    def subproof(m: int, start: int, end: int, complete: bool) -> None:
        n = end - start
        if m == n:
            if not complete:
                path.append(subtree_hash(read, start, end))
            return
        k = _split(n)
        if m <= k:
            subproof(m, start, start + k, complete)
            path.append(subtree_hash(read, start + k, end))
        else:
            subproof(m - k, start + k, end, False)
            path.append(subtree_hash(read, start, start + k))

    subproof(old_size, 0, new_size, True)
    return path


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` implies for `leaf` at `index` (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        _check_hash(p)
        if sn == 0:
            raise ProofError("inclusion proof is too long")
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
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    try:
        return root_from_inclusion_proof(index, size, leaf, proof) == root
    except ProofError:
        return False


def roots_from_consistency_proof(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """(old root, new root) that `proof` implies (RFC 9162 §2.1.4.2).

    Requires 0 < old_size < new_size; other sizes need no proof.
    """
    if not 0 < old_size < new_size:
        raise ProofError("consistency proofs exist only for 0 < old_size < new_size")
    if not proof:
        raise ProofError("consistency proof is empty")
    for p in proof:
        _check_hash(p)
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    return fr, sr


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    if old_size < 0 or new_size < old_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    try:
        fr, sr = roots_from_consistency_proof(old_size, new_size, old_root, proof)
    except ProofError:
        return False
    return fr == old_root and sr == new_root


def _check_hash(value: bytes) -> None:
    if len(value) != 32:
        raise ProofError(f"proof hash has {len(value)} bytes, not 32")
