"""The custody report (access/custody.py) and its text, CSV and JSON renderings.

Two logs: one made by the real Service (docked recordings, labels, cases,
a hold, a re-attribution, an audit, a checkpoint, then an entry after it),
and a synthetic one built entry by entry with its own Merkle tree and key,
for the kinds the Service does not log yet (access.*, recording.confidential)
and for the corruptions that must fail closed.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dockd.access.custody import (
    DESCRIPTIONS,
    CustodyError,
    CustodyReport,
    custody_report,
    describe,
    id_ranges,
)
from dockd.access.custody_render import CSV_COLUMNS, to_csv, to_html, to_json, to_text
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.errors import UsageError
from dockd.integrity.chain import GENESIS, LogEntry, entry_hash, next_entry
from dockd.integrity.checkpoint import Checkpoint
from dockd.integrity.merkle import (
    build_nodes,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_inclusion,
)
from dockd.integrity.naming import CASE_FIELDS, RECORDING_FIELDS, entries_about
from dockd.integrity.note import VerifierKey, sign
from dockd.service import Service
from tests.conftest import NOW
from tests.test_service_retention import Shot, at, dock, quick

# Names that belong to a case the reports below are not about: they must not
# appear in any rendering of them (001_a4d0be362abbcb47.txt Art. 29).
OTHER_PARTY = "王五"
OTHER_CASE = "B-9"
OUR_PARTY = "张三"


# -- a real log, by the Service -----------------------------------------------------


@dataclass(frozen=True)
class RealLog:
    raws: list[bytes]
    checkpoint: str
    tree_size: int
    keys: tuple[str, ...]
    proofs: Callable[[int], Sequence[bytes]]
    late_seq: int  # logged after the checkpoint

    def report(self, recordings: Sequence[int], case: str | None = None) -> CustodyReport:
        return custody_report(
            self.raws,
            recordings,
            case=case,
            proofs=self.proofs,
            checkpoint=self.checkpoint,
            keys=self.keys,
            generated_at=NOW + timedelta(hours=2),
        )


@pytest.fixture(scope="module")
def real_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealLog]:
    """Recordings 1-3 docked from DSJ0001; 1 and 2 in case A-1 (party 张三, held, the
    hold released), 3 alone in case B-9 (party 王五); the device re-attributed; an
    audit; a checkpoint; then one more label on recording 1 after it."""
    root = tmp_path_factory.mktemp("custody")
    config = quick(Config(state_dir=root / "state"))
    with Service(config, FixedClock(NOW)) as svc:
        shots = [Shot(at(1, i), f"clip {i}".encode() * 50, i + 1) for i in range(3)]
        r1, r2, r3 = (r.id for r in dock(svc, root / "cam", "DSJ0001", shots))
        svc.tag([r1, r2], cause="盗窃", parties=(OUR_PARTY,), categories=("evidence",), actor="li")
        svc.create_case("A-1", cause="盗窃案", parties=(OUR_PARTY,), actor="li")
        svc.link_case("A-1", [r1, r2], reason="同一警情", actor="li")
        svc.create_case(OTHER_CASE, cause="纠纷", parties=(OTHER_PARTY,), actor="zhao")
        svc.tag([r3], parties=(OTHER_PARTY,), actor="zhao")
        svc.link_case(OTHER_CASE, [r3], actor="zhao")
        held = svc.set_hold(case="A-1", reason="诉讼", actor="li")
        svc.release_hold(held.hold, reason="判决生效", actor="li")
        svc.assign_device(
            "DSJ0001", officer="054321", unit="二中队", valid_from=at(0), reason="补录", actor="wu"
        )
        svc.audit(fraction=1.0)
        svc.checkpoint()
        size = svc.catalog.head()[0]
        svc.tag([r1], note="复核完毕", actor="li")  # after the checkpoint
        raws = [row.raw for row in svc.catalog.log_rows()]
        last = svc.catalog.last_checkpoint()
        assert last is not None and int(last["size"]) == size
        read = svc.catalog.node
        proofs = {seq: inclusion_proof(read, seq - 1, size) for seq in range(1, size + 1)}
        keys = tuple(k.to_text() for k in svc.trusted_keys())
        svc._signer = None  # leave the late entry unsigned: close() would sign it
        yield RealLog(raws, str(last["note"]), size, keys, proofs.__getitem__, len(raws))


def _entries(raws: Sequence[bytes]) -> list[LogEntry]:
    return [LogEntry.from_bytes(raw) for raw in raws]


def _root(report: CustodyReport) -> bytes:
    body = report.checkpoint.rpartition("\n\n")[0] + "\n"
    return Checkpoint.from_text(body).root


def test_events_are_exactly_the_entries_about_the_recordings_in_log_order(
    real_log: RealLog,
) -> None:
    """Scope is naming.entries_about's and nothing else; order is the log's."""
    report = real_log.report([1, 2])
    seqs = [e.seq for e in report.events]
    assert seqs == entries_about(_entries(real_log.raws), [1, 2])
    assert seqs == sorted(set(seqs))
    kinds = {e.kind for e in report.events}
    assert {
        "recording.ingested",
        "recording.tagged",
        "case.created",
        "case.linked",
        "hold.set",
        "hold.released",
        "device.assigned",
        "retention.updated",
    } <= kinds
    ingested = [e for e in report.events if e.kind == "recording.ingested"]
    assert [e.recordings for e in ingested] == [(1,), (2,)]
    raw1 = LogEntry.from_bytes(real_log.raws[ingested[0].seq - 1])
    assert raw1.data["sha256"] in ingested[0].what_en
    assert "入库" in ingested[0].what_zh and raw1.data["sha256"] in ingested[0].what_zh
    assert report.subject == "recordings 1, 2" and report.subject_zh == "录像 1、2"


def test_every_proof_verifies_against_the_signed_root(real_log: RealLog) -> None:
    """Each checkpointed event's leaf hash is its entry's and its path leads to the root."""
    report = real_log.report([1, 2, 3])
    root = _root(report)
    assert base64.b64encode(root).decode() == report.root_hash
    assert report.tree_size == real_log.tree_size and report.signed_by == real_log.keys
    proven = [e for e in report.events if e.in_checkpoint]
    assert len(proven) >= 10
    for e in proven:
        leaf = leaf_hash(real_log.raws[e.seq - 1])
        assert base64.b64decode(e.leaf_hash) == leaf
        path = [base64.b64decode(h) for h in e.inclusion_path]
        assert verify_inclusion(e.leaf_index, report.tree_size, leaf, path, root), e.seq


def test_an_entry_after_the_checkpoint_is_listed_without_a_proof(real_log: RealLog) -> None:
    """Not yet checkpointed: still listed, marked so, with no path (never a made-up one)."""
    report = real_log.report([1])
    last = report.events[-1]
    assert last.seq == real_log.late_seq > report.tree_size
    assert not last.in_checkpoint and last.inclusion_path == ()
    assert last.kind == "recording.tagged" and "复核完毕" in last.what_zh
    assert report.unproven == (last,)
    assert "尚未纳入签名检查点" in to_text(report, "zh")
    assert "not yet in a signed checkpoint" in to_text(report, "en")
    assert to_csv(report).decode("utf-8-sig").rstrip("\n").endswith(",,false")


def test_another_cases_parties_appear_in_no_rendering(real_log: RealLog) -> None:
    """Recording 3's case B-9 and its party stay out of the report on 1 and 2."""
    report = real_log.report([1, 2], case="A-1")
    renderings = {
        "text zh": to_text(report, "zh"),
        "text en": to_text(report, "en"),
        "csv": to_csv(report).decode("utf-8-sig"),
        "json": to_json(report),
        "html zh": to_html(report, "zh"),
        "html en": to_html(report, "en"),
    }
    for name, text in renderings.items():
        assert OTHER_PARTY not in text, name
        assert OTHER_CASE not in text, name
        assert OUR_PARTY in text, name  # the check is not vacuous
    assert 3 not in {r for e in report.events for r in e.recordings}


def test_a_case_report_has_its_case_level_events(real_log: RealLog) -> None:
    """case.created concerns no recording itself; the released hold is the held ones'."""
    report = real_log.report([1, 2], case="A-1")
    assert report.subject == "case A-1 (2 recordings)"
    assert report.subject_zh == "案件 A-1（2 条录像）"
    by_kind = {e.kind: e for e in report.events}
    created = by_kind["case.created"]
    assert created.recordings == () and created.by == "li"
    assert "盗窃案" in created.what_zh and OUR_PARTY in created.what_zh
    # A case's hold covers whatever is linked to it, now or later: a case-level event.
    assert by_kind["hold.set"].recordings == by_kind["hold.released"].recordings == ()
    assert "A-1" in by_kind["hold.set"].what_en
    assert "判决生效" in by_kind["hold.released"].what_zh
    assert "054321" in by_kind["device.assigned"].what_en


def test_json_carries_every_field_and_parses_back(real_log: RealLog) -> None:
    report = real_log.report([2])
    value = json.loads(to_json(report))
    assert value == json.loads(json.dumps(report.as_json()))
    assert value["format"] == "dockd-custody/1"
    assert value["checkpoint"] == real_log.checkpoint
    assert [e["seq"] for e in value["events"]] == [e.seq for e in report.events]
    first = value["events"][0]
    assert first["leaf_index"] == first["seq"] - 1
    assert first["inclusion_path"] == list(report.events[0].inclusion_path)


def test_csv_is_one_row_per_event_with_a_bom(real_log: RealLog) -> None:
    report = real_log.report([1, 2], case="A-1")
    data = to_csv(report)
    assert data.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [int(r["seq"]) for r in rows] == [e.seq for e in report.events]
    for row, e in zip(rows, report.events, strict=True):
        assert row["what_zh"] == e.what_zh and row["leaf_hash"] == e.leaf_hash
        assert row["inclusion_path"].split() == list(e.inclusion_path)
        assert row["recordings"].split() == [str(r) for r in e.recordings]


# -- a synthetic log ------------------------------------------------------------------

ORIGIN = "dock.test/custody"

# One entry of every kind the report describes, about recording 1 (and 2, 9).
SAMPLES: dict[str, dict[str, Any]] = {
    "recording.ingested": {
        "recording": 1,
        "session": 3,
        "sha256": "ab" * 32,
        "size": 123456,
        "device_serial": "DSJ0001",
        "officer": "012345",
        "unit": "一中队",
        "source_path": "DCIM/1.MP4",
        "flags": ["unreadable"],
    },
    "recording.tagged": {"recordings": [1], "cause": "盗窃", "parties_added": [OUR_PARTY]},
    "recording.confidential": {"recordings": [1], "level": "privacy", "reason": "涉及未成年人"},
    "case.created": {"case": "A-1", "cause": "盗窃案", "parties": [OUR_PARTY], "categories": []},
    "case.linked": {"case": "A-1", "recordings": [1, 2], "reason": None},
    "case.unlinked": {"case": "A-1", "recordings": [2], "reason": "误关联"},
    "case.closed": {"case": "A-1", "reason": "结案"},
    "case.reopened": {"case": "A-1", "reason": "再审"},
    "hold.set": {"hold": 4, "case": None, "recordings": [1, 2], "reason": "诉讼"},
    "hold.released": {"hold": 4, "reason": "判决生效"},
    "device.assigned": {
        "assignment": 2,
        "serial": "DSJ0001",
        "officer": "054321",
        "unit": "二中队",
        "reattributed": [1],
    },
    "retention.updated": {"reason": "case.linked", "tiers": {"permanent": [1, 9]}, "kept": []},
    "retention.pending": {"recordings": [1], "delete_after": "2027-01-01T00:00:00Z"},
    "retention.restored": {"recording": 1, "reason": "误删", "keep_until": None},
    "report.spot_check": {"seed": 7, "sample": 1, "population": 40, "recordings": [1]},
    "export.planned": {
        "export": 1,
        "medium": "bd25",
        "copies": 2,
        "discs": [{"label": "D1", "recordings": [1]}, {"label": "D2", "recordings": [9]}],
        "approved_by": "chen",
        "reason": "移送",
    },
    "export.disc_built": {"export": 1, "label": "D1", "image_sha256": "cd" * 32, "recordings": [1]},
    "export.disc_burned": {"label": "D1", "drive": "/dev/sr0", "ok": True},
    "audit.done": {"checked": 2, "recordings": [1], "failures": []},
    "access.requested": {
        "request": 5,
        "action": "copy",
        "recordings": [1],
        "case": "A-1",
        "reason": "法院调取",
        "for_party": "某区人民法院",
        "until": "2026-12-31T00:00:00Z",
    },
    "access.approved": {"request": 5, "recordings": [1], "until": "2026-12-31T00:00:00Z"},
    "access.refused": {"request": 6, "recordings": [1], "reason": "理由不足"},
    "access.viewed": {"request": 5, "recording": 1, "until": "2026-12-31T00:00:00Z"},
    "access.copied": {
        "request": 5,
        "recordings": [1],
        "package_sha256": "ef" * 32,
        "for_party": "某区人民法院",
    },
    "access.denied": {"op": "export", "needs": ["supervisor"], "recordings": [1]},
    "retention.deleted": {"recording": 1, "sha256": "ab" * 32, "tier": "6m", "reason": "到期"},
    "replicate.verified": {
        "bucket": "evidence",
        "recordings": [1],
        "objects": [
            {
                "key": "dockd/abc/objects/sha256/ab/" + "ab" * 32,
                "version_id": "v-AbC",
                "sha256": "ab" * 32,
                "size": 123456,
                "retain_until": "2028-11-25T08:00:00Z",
                "recordings": [1],
            }
        ],
    },
    "replicate.extended": {
        "bucket": "evidence",
        "recordings": [1],
        "objects": [
            {
                "key": "dockd/abc/objects/sha256/ab/" + "ab" * 32,
                "version_id": "v-AbC",
                "retain_until": "2036-11-25T08:00:00Z",
                "recordings": [1],
            }
        ],
    },
}

_CJK = re.compile(r"[\u4e00-\u9fff]")


def _sample_log(extra: Sequence[tuple[str, dict[str, Any]]] = ()) -> list[bytes]:
    """Entries 1..n of SAMPLES (each `by` someone) plus `extra`, properly chained."""
    raws: list[bytes] = []
    seq, prev = 0, GENESIS
    items = [(kind, {**data, "by": f"user{i}"}) for i, (kind, data) in enumerate(SAMPLES.items())]
    for kind, data in [*items, *extra]:
        entry = next_entry(seq, prev, NOW + timedelta(minutes=seq), kind, data)
        raw = entry.to_bytes()
        raws.append(raw)
        seq, prev = entry.seq, entry_hash(raw)
    return raws


@dataclass(frozen=True)
class Signed:
    checkpoint: str
    keys: tuple[str, ...]
    proofs: Callable[[int], Sequence[bytes]]


def _sign(raws: Sequence[bytes], size: int, key: Ed25519PrivateKey | None = None) -> Signed:
    key = key or Ed25519PrivateKey.generate()
    nodes = build_nodes(leaf_hash(raw) for raw in raws[:size])

    def read(level: int, index: int) -> bytes:
        return nodes[(level, index)]

    root = root_hash(read, size)
    note = sign(Checkpoint(ORIGIN, size, root).to_text(), ORIGIN, key)
    keys = (VerifierKey.of(ORIGIN, key).to_text(),)
    return Signed(note, keys, lambda seq: inclusion_proof(read, seq - 1, size))


def _report(
    raws: Sequence[bytes],
    signed: Signed,
    recordings: Sequence[int] = (1,),
    case: str | None = None,
) -> CustodyReport:
    return custody_report(
        raws,
        recordings,
        case=case,
        proofs=signed.proofs,
        checkpoint=signed.checkpoint,
        keys=signed.keys,
        generated_at=NOW,
    )


@pytest.fixture(scope="module")
def sample() -> tuple[list[bytes], Signed]:
    raws = _sample_log()
    return raws, _sign(raws, len(raws))


def test_every_kind_the_scope_rule_knows_is_described() -> None:
    """A kind naming.py scopes but custody cannot say would fall back to its bare kind."""
    scoped = set(RECORDING_FIELDS) | set(CASE_FIELDS) | {"hold.released", "export.disc_burned"}
    assert scoped <= set(DESCRIPTIONS)
    assert set(SAMPLES) == set(DESCRIPTIONS)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_kind_says_one_sentence_in_english_and_in_chinese(kind: str) -> None:
    entry = LogEntry(1, "2026-11-25T09:00:00Z", kind, SAMPLES[kind], GENESIS)
    en, zh = describe(entry, [1], [1])
    assert en and zh and en != zh
    assert "no description" not in en and "无说明" not in zh
    assert _CJK.search(zh), zh
    assert "9" not in re.sub(r"[0-9a-f]{64}", "", en.replace("2026", "")), en  # only counted


def test_every_sample_kind_is_in_the_report_with_a_verified_proof(
    sample: tuple[list[bytes], Signed],
) -> None:
    raws, signed = sample
    report = _report(raws, signed, [1], case="A-1")
    assert [e.kind for e in report.events] == list(SAMPLES)
    assert [e.by for e in report.events] == [f"user{i}" for i in range(len(SAMPLES))]
    root = _root(report)
    for e in report.events:
        path = [base64.b64decode(h) for h in e.inclusion_path]
        leaf = base64.b64decode(e.leaf_hash)
        assert verify_inclusion(e.leaf_index, len(raws), leaf, path, root)
    by_kind = {e.kind: e for e in report.events}
    assert by_kind["hold.released"].recordings == (1,)  # the held recordings that are ours
    assert by_kind["export.disc_burned"].recordings == (1,)
    texts = {e.kind: (e.what_en, e.what_zh) for e in report.events}
    assert texts["access.copied"][1].startswith("录像 1被复制")
    assert "某区人民法院" in texts["access.requested"][1]
    assert "个人隐私" in texts["recording.confidential"][1]
    assert "D1" in texts["export.planned"][0] and "D2" not in texts["export.planned"][0]
    assert texts["export.disc_burned"][0].startswith("disc D1 burned")


def test_an_undescribed_or_malformed_entry_is_listed_by_its_kind_and_who() -> None:
    """Never dropped: a kind this dockd cannot say, or fields it cannot read."""
    future = LogEntry(1, "2026-11-25T09:00:00Z", "access.revoked", {"request": 5}, GENESIS)
    en, zh = describe(future, [1])
    assert en.startswith("access.revoked") and zh.startswith("access.revoked")
    raws = _sample_log([("case.linked", {"recordings": [1], "by": "mallory"})])
    report = _report(raws, _sign(raws, len(raws)))
    last = report.events[-1]
    assert (last.kind, last.by, last.recordings) == ("case.linked", "mallory", (1,))
    assert "no description" in last.what_en and "无说明" in last.what_zh
    assert "mallory" in to_text(report, "en")


def test_another_recordings_request_stays_out(sample: tuple[list[bytes], Signed]) -> None:
    raws = _sample_log(
        [("access.requested", {"request": 8, "recordings": [9], "for_party": "李四", "by": "x"})]
    )
    report = _report(raws, _sign(raws, len(raws)), [1], case="A-1")
    assert len(report.events) == len(SAMPLES)
    for text in (to_text(report, "zh"), to_json(report), to_csv(report).decode("utf-8-sig")):
        assert "李四" not in text


def _corruptions(path: Sequence[bytes]) -> Iterator[tuple[str, list[bytes]]]:
    """Every one-bit flip of every hash, a truncated path, an extra hash, a swapped pair."""
    for i, h in enumerate(path):
        for bit in (0, 7, 255):
            flipped = bytearray(h)
            flipped[bit // 8] ^= 1 << (bit % 8)
            yield f"flip {i}/{bit}", [*path[:i], bytes(flipped), *path[i + 1 :]]
    if path:
        yield "truncated", list(path[:-1])
    yield "extra", [*path, b"\x00" * 32]
    if len(path) > 1:
        yield "swapped", [path[1], path[0], *path[2:]]


def test_a_proof_that_does_not_lead_to_the_root_fails_closed(
    sample: tuple[list[bytes], Signed],
) -> None:
    """A report never carries a proof that does not verify."""
    raws, signed = sample
    target = 5
    good = list(signed.proofs(target))
    count = 0
    for _name, bad in _corruptions(good):

        def proofs(seq: int, bad: list[bytes] = bad) -> Sequence[bytes]:
            return bad if seq == target else signed.proofs(seq)

        with pytest.raises(CustodyError, match="inclusion proof of log entry 5"):
            _report(raws, replace(signed, proofs=proofs))
        count += 1
    assert count >= 10


def test_a_checkpoint_not_signed_by_the_given_keys_fails_closed(
    sample: tuple[list[bytes], Signed],
) -> None:
    raws, signed = sample
    stranger = VerifierKey.of(ORIGIN, Ed25519PrivateKey.generate()).to_text()
    with pytest.raises(CustodyError, match="checkpoint"):
        _report(raws, replace(signed, keys=(stranger,)))
    tampered = signed.checkpoint.replace(f"\n{len(raws)}\n", f"\n{len(raws) - 1}\n", 1)
    with pytest.raises(CustodyError, match="checkpoint"):
        _report(raws, replace(signed, checkpoint=tampered))


def test_entries_that_are_not_the_log_fail_closed(sample: tuple[list[bytes], Signed]) -> None:
    raws, signed = sample
    with pytest.raises(CustodyError, match="out of order"):
        _report([raws[1], raws[0], *raws[2:]], signed)
    with pytest.raises(CustodyError, match="only"):
        _report(raws[:-1], signed)
    with pytest.raises(CustodyError, match="does not parse"):
        _report([*raws[:-1], b"{}"], signed)


def test_a_changed_entry_fails_closed(sample: tuple[list[bytes], Signed]) -> None:
    """An entry whose bytes changed no longer hashes to the leaf the proof is of."""
    raws, signed = sample
    entry = LogEntry.from_bytes(raws[0])
    changed = replace(entry, data={**entry.data, "sha256": "00" * 32}).to_bytes()
    with pytest.raises(CustodyError, match="inclusion proof of log entry 1"):
        _report([changed, *raws[1:]], signed)


def test_entries_after_the_checkpoint_have_no_proof_and_are_not_asked_for_one(
    sample: tuple[list[bytes], Signed],
) -> None:
    raws, _ = sample
    signed = _sign(raws, 10)
    asked: list[int] = []

    def proofs(seq: int) -> Sequence[bytes]:
        asked.append(seq)
        return signed.proofs(seq)

    report = _report(raws, replace(signed, proofs=proofs))
    assert report.tree_size == 10 and max(asked) == 10
    assert [e.in_checkpoint for e in report.events] == [e.seq <= 10 for e in report.events]
    assert all(e.inclusion_path == () for e in report.unproven)


def test_a_tree_of_one_leaf_has_an_empty_path_and_is_in_the_checkpoint() -> None:
    raws = _sample_log()[:1]
    report = _report(raws, _sign(raws, 1))
    (event,) = report.events
    assert event.in_checkpoint and event.inclusion_path == ()


def test_neither_recordings_nor_a_case_is_a_usage_error(
    sample: tuple[list[bytes], Signed],
) -> None:
    raws, signed = sample
    with pytest.raises(UsageError):
        _report(raws, signed, [])


def test_unknown_language_is_a_usage_error(sample: tuple[list[bytes], Signed]) -> None:
    raws, signed = sample
    with pytest.raises(UsageError):
        to_text(_report(raws, signed), "fr")


@pytest.mark.parametrize(
    ("ids", "text"),
    [
        ([], ""),
        ([7], "7"),
        ([8, 7], "7, 8"),
        ([7, 8, 9], "7–9"),
        ([1, 2, 3, 5, 7, 8, 9, 10, 12], "1–3, 5, 7–10, 12"),
        ([3, 3, 4], "3, 4"),
    ],
)
def test_id_ranges(ids: list[int], text: str) -> None:
    assert id_ranges(ids) == text


def test_html_escapes_what_the_log_says() -> None:
    """A label is text, never markup."""
    raws = _sample_log([("recording.tagged", {"recordings": [1], "note": "<b>x</b>", "by": "y"})])
    html = to_html(_report(raws, _sign(raws, len(raws))), "en")
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "url(" not in html and "http" not in html
