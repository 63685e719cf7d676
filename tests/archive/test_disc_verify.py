"""verify.py: the same verdicts as dockd's own merkle/note/checkpoint/canonical code, and it
runs from a disc with nothing but Python 3 (3.8 too) and `cryptography`."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from dockd.errors import VerifyError
from dockd.integrity import merkle
from dockd.integrity import standalone_verify as dv
from dockd.integrity.canonical import canonical_json, parse_canonical
from dockd.integrity.checkpoint import Checkpoint, CheckpointError
from dockd.integrity.note import NoteError, VerifierKey, open_note, sign
from tests.archive.discs import Dock, Staged, run_verify_py

# -- equivalence with dockd ---------------------------------------------------------------


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"entry {i}".encode()) for i in range(n)]


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(1, 70),
    data=st.data(),
)
def test_inclusion_verdicts_equal_dockds(size: int, data: st.DataObject) -> None:
    leaves = _leaves(size)
    nodes = merkle.build_nodes(leaves)

    def read(level: int, index: int) -> bytes:
        return nodes[(level, index)]

    root = merkle.root_hash(read, size)
    index = data.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof(read, index, size)
    assert dv.verify_inclusion(index, size, leaves[index], proof, root)
    # Then a mutated question: both must answer it the same way.
    claim_index = data.draw(st.sampled_from([index, index + 1, index - 1, 0, size - 1, size]))
    claim_size = data.draw(st.sampled_from([size, size + 1, size - 1, max(1, size // 2)]))
    mutated = list(proof)
    action = data.draw(st.sampled_from(["none", "flip", "drop", "extra", "short_hash"]))
    if action == "flip" and mutated:
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i] = bytes([mutated[i][0] ^ 1]) + mutated[i][1:]
    elif action == "drop" and mutated:
        mutated.pop()
    elif action == "extra":
        mutated.append(bytes(32))
    elif action == "short_hash" and mutated:
        mutated[0] = mutated[0][:31]
    leaf = data.draw(st.sampled_from([leaves[index], leaves[0], bytes(32)]))
    theirs = merkle.verify_inclusion(claim_index, claim_size, leaf, mutated, root)
    mine = dv.verify_inclusion(claim_index, claim_size, leaf, mutated, root)
    assert mine == theirs


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def _dockd_accepts(raw: bytes) -> bool:
    try:
        parse_canonical(raw)
    except VerifyError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(value=json_values, data=st.data())
def test_canonical_verdicts_equal_dockds(value: Any, data: st.DataObject) -> None:
    raw = canonical_json(value)
    assert dv.is_canonical(raw) and _dockd_accepts(raw)
    assert dv.canonical_json(value) == raw
    variants = [
        json.dumps(value, sort_keys=True).encode(),
        json.dumps(value, sort_keys=True, separators=(",", ":")).encode(),  # ASCII escapes
        json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(),
        raw + b" ",
        raw.replace(b"1", b"1.0", 1),
        raw.replace(b"1", b"1e0", 1),
        b"NaN",
        b'"\\ud800"',
        b'{"a":1,"a":1}',
        b"\xff",
    ]
    if raw:
        cut = data.draw(st.integers(0, len(raw) - 1))
        variants.append(raw[:cut] + bytes([raw[cut] ^ 0x20]) + raw[cut + 1 :])
    for variant in variants:
        assert dv.is_canonical(variant) == _dockd_accepts(variant), variant


@pytest.fixture(scope="module")
def signer() -> tuple[Ed25519PrivateKey, VerifierKey]:
    private = Ed25519PrivateKey.generate()
    return private, VerifierKey.of("dockd/test", private)


def _dockd_opens(note: str, keys: list[VerifierKey]) -> str | None:
    try:
        return open_note(note, keys).text
    except NoteError:
        return None


def _mine_opens(note: str, keys: list[str]) -> str | None:
    try:
        return dv.open_note(note, [dv.parse_key(k) for k in keys])
    except dv.NoteError:
        return None


def test_signed_note_verdicts_equal_dockds(
    signer: tuple[Ed25519PrivateKey, VerifierKey],
) -> None:
    private, vkey = signer
    other = Ed25519PrivateKey.generate()
    other_key = VerifierKey.of("dockd/test", other)
    text = Checkpoint("dockd/test", 7, bytes(range(32))).to_text()
    note = sign(text, "dockd/test", private)
    by_other = sign(text, "dockd/test", other)
    both = note + by_other.split("\n\n", 1)[1]
    sig_line = note.split("\n\n")[1]
    blob = base64.b64decode(sig_line.split(" ")[2])
    forged_sig = sig_line.split(" ")[0] + " " + sig_line.split(" ")[1] + " "
    forged_sig += base64.b64encode(blob[:4] + bytes(64)).decode()
    cases = [
        note,
        by_other,
        both,
        note.replace("\n7\n", "\n8\n"),
        note.rstrip("\n"),
        note.replace("\n\n", "\n"),
        text + "\n" + forged_sig + "\n",
        text + "\n— dockd/test !!notbase64\n",
        text + "\n— dockd/test AAAA\n",
        "no signature at all\n",
        text.replace("dockd/test", "dockd/\x01test") + "\n" + sig_line + "\n",
    ]
    key_sets = [[vkey], [other_key], [vkey, other_key], []]
    for case in cases:
        for keys in key_sets:
            theirs = _dockd_opens(case, keys)
            mine = _mine_opens(case, [k.to_text() for k in keys])
            assert mine == theirs, (case, [k.name for k in keys])
    assert _mine_opens(note, [vkey.to_text()]) == text


def test_key_and_checkpoint_parsing_equal_dockds(
    signer: tuple[Ed25519PrivateKey, VerifierKey],
) -> None:
    _, vkey = signer
    good = vkey.to_text()
    for text in [
        good,
        good + "\n",
        good.replace("+", "-", 1),
        good[:-2],
        "name+0000+AA==",
        good.replace(good.split("+")[1], "00000000"),
        "bad name" + good[good.index("+") :],
        "+" + good,
    ]:
        try:
            theirs: Any = VerifierKey.from_text(text).to_text()
        except NoteError:
            theirs = None
        try:
            mine: Any = dv.parse_key(text).text
        except ValueError:
            mine = None
        assert mine == theirs, text
    root = base64.b64encode(bytes(32)).decode()
    for body in [
        f"o\n5\n{root}\n",
        f"o\n5\n{root}\next\n",
        f"o\n05\n{root}\n",
        f"o\n-5\n{root}\n",
        f"o\n5\n{root}",
        f"\n5\n{root}\n",
        f"o\n5\n{root[:-4]}\n",
        f"o\n5\n{root}\n\n",
        "o\n5\n",
    ]:
        try:
            theirs = Checkpoint.from_text(body)
            theirs = (theirs.origin, theirs.size, theirs.root, theirs.extensions)
        except CheckpointError:
            theirs = None
        try:
            mine = tuple(dv.parse_checkpoint(body))
        except ValueError:
            mine = None
        assert mine == theirs, body


def test_real_disc_data_agrees_with_dockd(staged: Staged, dock: Dock) -> None:
    root = staged.bag
    note = (root / "dockd/checkpoint.txt").read_text("utf-8")
    body = open_note(note, [VerifierKey.from_text(dock.key)]).text
    assert dv.open_note(note, [dv.parse_key(dock.key)]) == body
    cp = Checkpoint.from_text(body)
    assert tuple(dv.parse_checkpoint(body)) == (cp.origin, cp.size, cp.root, cp.extensions)
    proofs = json.loads((root / "dockd/proofs.json").read_text())
    lines = (root / "dockd/entries.jsonl").read_bytes().splitlines()
    assert len(lines) == len(proofs["proofs"]) >= 5
    for raw in lines:
        seq = json.loads(raw)["seq"]
        path = [base64.b64decode(h) for h in proofs["proofs"][str(seq)]]
        assert merkle.verify_inclusion(seq - 1, cp.size, merkle.leaf_hash(raw), path, cp.root)
        assert dv.verify_inclusion(seq - 1, cp.size, dv.leaf_hash(raw), path, cp.root)
        assert dv.is_canonical(raw) and _dockd_accepts(raw)
    result = dv.check_bag(str(root), [dock.key])
    assert result.problems == []
    assert result.entries == len(lines)
    assert sorted((f.bag_path, f.sha256, f.recording_id) for f in result.recordings) == sorted(
        (r["bag_path"], r["sha256"], r["id"]) for r in staged.records
    )


def test_verify_py_imports_nothing_of_dockd() -> None:
    source = Path(dv.__file__).read_text("utf-8")
    assert "import dockd" not in source and "from dockd" not in source
    code = (
        "import runpy, sys\n"
        "before = set(sys.modules)\n"
        f"runpy.run_path({dv.__file__!r}, run_name='not_main')\n"
        "new = set(sys.modules) - before\n"
        "print(sorted(m for m in new if m.split('.')[0] not in sys.stdlib_module_names))"
    )
    proc = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "[]", proc.stderr


# -- running the disc's own verify.py ------------------------------------------------------


def test_verify_py_passes_in_a_fresh_virtualenv(extracted: Path, fresh_python: Path) -> None:
    proc = run_verify_py(fresh_python, extracted)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("OK")
    # Named explicitly, and as the working directory's disc (the default is its folder).
    proc = run_verify_py(fresh_python, extracted, str(extracted))
    assert proc.returncode == 0, proc.stdout


def test_verify_py_passes_on_python_3_8(extracted: Path, python38: Path) -> None:
    version = subprocess.run(
        [str(python38), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
    )
    assert version.stdout.strip() == "(3, 8)"
    proc = run_verify_py(python38, extracted)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_verify_py_without_cryptography_checks_hashes_and_says_what_it_could_not(
    extracted: Path, bare_python: Path
) -> None:
    proc = run_verify_py(bare_python, extracted)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        "dockd/checkpoint.txt: signature NOT checked: the Python package 'cryptography' is "
        "missing (pip install cryptography) [checkpoint_untrusted]"
    )
    assert lines[1:] == ["1 problem / 发现 1 个问题"]


def test_verify_py_keys_from_an_independent_copy(
    extracted: Path, fresh_python: Path, dock: Dock
) -> None:
    assert run_verify_py(fresh_python, extracted, "--key", dock.key).returncode == 0
    stranger = VerifierKey.of("dockd/archive-test", Ed25519PrivateKey.generate()).to_text()
    proc = run_verify_py(fresh_python, extracted, "--key", stranger)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == (
        "dockd/checkpoint.txt: is not signed by any key of the --key keys [checkpoint_untrusted]"
    )
    proc = run_verify_py(fresh_python, extracted, "--key", "not-a-key")
    assert proc.returncode == 2 and "not-a-key" in proc.stderr
