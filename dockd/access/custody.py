"""The chain-of-custody report (issue 15): every logged event of some recordings, with proofs.

Pure: the log's entry bytes, a signed checkpoint, its keys and a source of
inclusion paths in; a `CustodyReport` out. No files, no database, no clock
(the moment it is generated at is passed in).

- Which entries belong to the report is decided by `entries_about`
  (integrity/naming.py), the one scoping rule; nothing here widens it.
- Each event says, in English and in Chinese, what the entry records about
  the report's recordings. Other recordings an entry names are never listed
  (at most counted); an entry of a kind without a description is still
  listed, by its kind and who made it, never dropped.
- Each event carries the RFC 9162 §2.1.1 leaf hash of its entry bytes. An
  entry inside the checkpoint (seq <= tree size) also carries its RFC 9162
  §2.1.3 inclusion path (leaf index seq - 1), checked here against the
  checkpoint's root: a report never carries a proof that does not verify
  (fails closed, CustodyError). An entry logged after the checkpoint is
  listed all the same with `in_checkpoint` False and no path ("not yet in a
  signed checkpoint"); a later checkpoint covers it.
- The checkpoint is a C2SP tlog-checkpoint in a C2SP signed note
  (integrity/checkpoint.py, note.py); it must verify with one of `keys`.
  The report's origin, tree size and root hash are read from it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from dockd.clock import isoformat_utc
from dockd.errors import DockdError, UsageError, VerifyError
from dockd.integrity.chain import LogEntry
from dockd.integrity.checkpoint import Checkpoint
from dockd.integrity.merkle import leaf_hash, verify_inclusion
from dockd.integrity.naming import case_named, entries_about, recordings_named
from dockd.integrity.note import VerifierKey, open_note

FORMAT = "dockd-custody/1"


class CustodyError(VerifyError):
    """The entries, checkpoint or proofs given cannot make a true custody report."""


@dataclass(frozen=True)
class CustodyEvent:
    """One log entry about the report's recordings.

    `recordings` are those of the report's recordings the entry concerns
    (empty for a case-level entry such as case.closed). `inclusion_path` is
    empty when `in_checkpoint` is False, and also for the only leaf of a tree
    of size 1: read `in_checkpoint`, not the path's length.
    """

    seq: int
    time: str
    kind: str
    by: str | None
    recordings: tuple[int, ...]
    what_en: str
    what_zh: str
    leaf_hash: str  # base64 of SHA-256(0x00 || entry bytes)
    in_checkpoint: bool
    inclusion_path: tuple[str, ...]  # base64 hashes, leaf to root

    @property
    def leaf_index(self) -> int:
        return self.seq - 1

    def as_json(self) -> dict[str, Any]:
        return {**_fields_of(self), "leaf_index": self.leaf_index}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CustodyEvent:
        """Back from `as_json` (the daemon's answer); the report is not re-checked."""
        return cls(**_from_fields(cls, data))


@dataclass(frozen=True)
class CustodyReport:
    subject: str  # "recording 7", "case A-1 (3 recordings)"
    subject_zh: str  # "录像 7", "案件 A-1（3 条录像）"
    recordings: tuple[int, ...]
    case: str | None
    origin: str
    generated_at: str  # ISO UTC
    tree_size: int
    root_hash: str  # base64, from the checkpoint
    checkpoint: str  # the signed note
    keys: tuple[str, ...]  # verifier keys, name+id+key
    signed_by: tuple[str, ...]  # those of `keys` whose signature on the note verified
    events: tuple[CustodyEvent, ...]

    @property
    def unproven(self) -> tuple[CustodyEvent, ...]:
        """The events logged after the checkpoint."""
        return tuple(e for e in self.events if not e.in_checkpoint)

    def as_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **_fields_of(self), "events": [e.as_json() for e in self.events]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CustodyReport:
        """Back from `as_json` (the daemon's answer), to render it; not re-checked."""
        if data.get("format") != FORMAT:
            raise UsageError(f"not a custody report of format {FORMAT}")
        values = _from_fields(cls, data)
        values["events"] = tuple(CustodyEvent.from_json(e) for e in data["events"])
        return cls(**values)


def _from_fields(cls: type[Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """The dataclass's fields from JSON: arrays back to tuples."""
    return {
        f.name: tuple(data[f.name]) if isinstance(data[f.name], list) else data[f.name]
        for f in fields(cls)
    }


def _fields_of(value: CustodyEvent | CustodyReport) -> dict[str, Any]:
    """The dataclass's fields by name, tuples as lists (JSON arrays)."""
    found = ((f.name, getattr(value, f.name)) for f in fields(value))
    return {name: list(v) if isinstance(v, tuple) else v for name, v in found}


ProofSource = Callable[[int], Sequence[bytes]]


def custody_report(
    raw_entries: Sequence[bytes],
    recordings: Iterable[int],
    *,
    case: str | None,
    proofs: ProofSource,
    checkpoint: str,
    keys: Sequence[str],
    generated_at: datetime,
) -> CustodyReport:
    """The custody report of `recordings` (and of `case`, if given).

    Requires `raw_entries` to be the log's entries from seq 1 on, in order,
    at least up to the checkpoint's tree size (later ones are listed as not
    yet checkpointed); all of them, so that a case link logged late still
    brings in the case's earlier entries. `proofs(seq)` is the inclusion
    path of leaf seq - 1 in the tree of the checkpoint's size; it is asked
    only for 1 <= seq <= that size. `keys` are verifier keys (name+id+key)
    of which at least one must have signed `checkpoint`.

    Raises UsageError when neither recordings nor a case is given, and
    CustodyError when the entries, checkpoint or a proof do not hold.
    """
    wanted = tuple(sorted(set(recordings)))
    if not wanted and case is None:
        raise UsageError("a custody report needs recordings or a case")
    body, signed_by = _open_checkpoint(checkpoint, keys)
    entries = _parse(raw_entries)
    if len(entries) < body.size:
        raise CustodyError(
            f"the checkpoint covers {body.size} log entries, but only {len(entries)} were given"
        )
    mine = frozenset(wanted)
    holds: dict[int, tuple[int, ...]] = {}
    discs: dict[str, tuple[int, ...]] = {}
    events: list[CustodyEvent] = []
    for seq in entries_about(entries, wanted, () if case is None else (case,)):
        entry, raw = entries[seq - 1], raw_entries[seq - 1]
        concerns = tuple(sorted(recordings_named(entry) & mine))
        data = entry.data
        if entry.kind == "hold.set" and isinstance(data.get("hold"), int):
            holds[data["hold"]] = concerns
        elif entry.kind == "hold.released":
            hold = data.get("hold")
            concerns = holds.get(hold, ()) if isinstance(hold, int) else ()
        elif entry.kind == "export.disc_built":
            discs[str(data.get("label"))] = concerns
        elif entry.kind == "export.disc_burned":
            concerns = discs.get(str(data.get("label")), ())
        events.append(_event(entry, raw, concerns, mine, body, proofs))
    subject, subject_zh = _subject(wanted, case)
    return CustodyReport(
        subject=subject,
        subject_zh=subject_zh,
        recordings=wanted,
        case=case,
        origin=body.origin,
        generated_at=isoformat_utc(generated_at),
        tree_size=body.size,
        root_hash=_b64(body.root),
        checkpoint=checkpoint,
        keys=tuple(keys),
        signed_by=signed_by,
        events=tuple(events),
    )


def _open_checkpoint(note: str, keys: Sequence[str]) -> tuple[Checkpoint, tuple[str, ...]]:
    try:
        opened = open_note(note, [VerifierKey.from_text(k) for k in keys])
        return Checkpoint.from_text(opened.text), tuple(k.to_text() for k in opened.verified_by)
    except DockdError as exc:
        raise CustodyError(f"the checkpoint does not hold: {exc}") from None


def _parse(raw_entries: Sequence[bytes]) -> list[LogEntry]:
    entries: list[LogEntry] = []
    for position, raw in enumerate(raw_entries, start=1):
        try:
            entry = LogEntry.from_bytes(raw)
        except DockdError as exc:
            raise CustodyError(f"log entry {position} does not parse: {exc}") from None
        if entry.seq != position:
            raise CustodyError(f"log entry {position} says seq {entry.seq}: entries out of order")
        entries.append(entry)
    return entries


def _event(
    entry: LogEntry,
    raw: bytes,
    concerns: tuple[int, ...],
    mine: frozenset[int],
    body: Checkpoint,
    proofs: ProofSource,
) -> CustodyEvent:
    leaf = leaf_hash(raw)
    path: tuple[bytes, ...] = ()
    inside = entry.seq <= body.size
    if inside:
        path = tuple(proofs(entry.seq))
        if not verify_inclusion(entry.seq - 1, body.size, leaf, path, body.root):
            raise CustodyError(
                f"the inclusion proof of log entry {entry.seq} does not lead to the "
                f"checkpoint's root (tree size {body.size}); run `dockd verify`"
            )
    en, zh = describe(entry, concerns, mine)
    by = entry.data.get("by")
    return CustodyEvent(
        seq=entry.seq,
        time=entry.time,
        kind=entry.kind,
        by=by if isinstance(by, str) else None,
        recordings=concerns,
        what_en=en,
        what_zh=zh,
        leaf_hash=_b64(leaf),
        in_checkpoint=inside,
        inclusion_path=tuple(_b64(h) for h in path),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _subject(wanted: tuple[int, ...], case: str | None) -> tuple[str, str]:
    if case is not None:
        n = len(wanted)
        return f"case {case} ({n} recording{'' if n == 1 else 's'})", f"案件 {case}（{n} 条录像）"
    return rec_en(wanted), rec_zh(wanted)


# -- what each kind of entry says ------------------------------------------------------


def id_ranges(ids: Iterable[int]) -> str:
    """`7–9, 12`: ascending ids, runs of three or more as ranges."""
    ordered = sorted(set(ids))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{ordered[i]}–{ordered[j]}")
        else:
            parts.extend(str(n) for n in ordered[i : j + 1])
        i = j + 1
    return ", ".join(parts)


def rec_en(ids: Sequence[int]) -> str:
    return f"recording{'' if len(ids) == 1 else 's'} {id_ranges(ids)}" if ids else "no recording"


def rec_zh(ids: Sequence[int]) -> str:
    return f"录像 {id_ranges(ids).replace(', ', '、')}" if ids else "无录像"


_LEVELS = {
    "state_secret": ("state secret", "国家秘密"),
    "commercial_secret": ("commercial secret", "商业秘密"),
    "privacy": ("personal privacy", "个人隐私"),
}
_TIERS = {
    "6m": ("6 months", "6 个月"),
    "2y": ("2 years", "2 年"),
    "permanent": ("permanent", "永久"),
}
_ACTIONS = {"view": ("view", "查看"), "copy": ("copy", "复制"), "export": ("export", "导出")}

# A clause: a data field, its English and its Chinese text with `{}` for the value
# (a list joined, a number as given: `{:,}` groups digits); left out when empty.
Clause = tuple[str, str, str]
_REASON: Clause = ("reason", "reason “{}”", "理由“{}”")


def _text(value: object, sep: str) -> object:
    if isinstance(value, list):
        return sep.join(str(_text(v, sep)) for v in value)
    return value


class _Say:
    """Two sentences built clause by clause: English joined by ", ", Chinese by "，"."""

    def __init__(self, en: str, zh: str, data: Mapping[str, Any] | None = None) -> None:
        self.en, self.zh, self.data = [en], [zh], data or {}

    def add(self, value: object, en: str, zh: str) -> _Say:
        """Add the clause pair (each with `{}` for `value`) unless `value` is empty."""
        if value is not None and value != "" and value != []:
            self.en.append(en.format(_text(value, ", ")))
            self.zh.append(zh.format(_text(value, "、")))
        return self

    def fields(self, *clauses: Clause) -> _Say:
        for field, en, zh in clauses:
            self.add(self.data.get(field), en, zh)
        return self

    def done(self) -> tuple[str, str]:
        return ", ".join(self.en), "，".join(self.zh)


class _Fields(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "?"


@dataclass(frozen=True)
class _Kind:
    """A kind said by a head and clauses. In the head, {R} is the recordings the entry
    concerns and {name} a data field."""

    en: str
    zh: str
    clauses: tuple[Clause, ...] = ()

    def __call__(
        self, d: dict[str, Any], recs: tuple[int, ...], mine: frozenset[int]
    ) -> tuple[str, str]:
        en = self.en.format_map(_Fields({k: _text(v, ", ") for k, v in d.items()}, R=rec_en(recs)))
        zh = self.zh.format_map(_Fields({k: _text(v, "、") for k, v in d.items()}, R=rec_zh(recs)))
        return _Say(en, zh, d).fields(*self.clauses).done()


_Describe = Callable[[dict[str, Any], tuple[int, ...], frozenset[int]], tuple[str, str]]


def _pair(table: Mapping[str, tuple[str, str]], value: object) -> tuple[str, str]:
    return table.get(str(value), (str(value), str(value)))


def _ours(value: object, mine: frozenset[int]) -> list[int]:
    return sorted(set(value) & mine) if isinstance(value, list) else []


def _confidential(d: dict[str, Any], recs: tuple[int, ...], _: frozenset[int]) -> tuple[str, str]:
    if d.get("level") is None:
        say = _Say(f"confidentiality of {rec_en(recs)} removed", f"解除{rec_zh(recs)}的密级", d)
    else:
        en, zh = _pair(_LEVELS, d["level"])
        say = _Say(f"{rec_en(recs)} marked confidential: {en}", f"{rec_zh(recs)}定密：{zh}", d)
    return say.fields(_REASON).done()


def _linked(d: dict[str, Any], recs: tuple[int, ...], mine: frozenset[int]) -> tuple[str, str]:
    say = _Say(
        f"{rec_en(recs)} linked to case {d['case']}", f"{rec_zh(recs)}关联案件 {d['case']}", d
    )
    others = len(set(d["recordings"]) - mine) if isinstance(d.get("recordings"), list) else 0
    say.add(others or None, "with {} other recording(s)", "另有 {} 条其他录像")
    return say.fields(_REASON).done()


def _hold_set(d: dict[str, Any], recs: tuple[int, ...], _: frozenset[int]) -> tuple[str, str]:
    hold, case = d.get("hold"), d.get("case")
    on_en, on_zh = (
        (f"case {case}", f"案件 {case}") if case is not None else (rec_en(recs), rec_zh(recs))
    )
    say = _Say(f"hold {hold} set on {on_en}", f"对{on_zh}设置证据保全 {hold}", d)
    if case is not None and recs:
        say.add(rec_en(recs), "covering {}", "涵盖" + rec_zh(recs))
    return say.fields(_REASON).done()


def _assigned(d: dict[str, Any], recs: tuple[int, ...], _: frozenset[int]) -> tuple[str, str]:
    if d.get("officer") is None:
        en, zh = f"device {d.get('serial')} back to the pool", f"设备 {d.get('serial')} 收回备用"
    else:
        en, zh = f"to officer {d['officer']}", f"归属警员 {d['officer']}"
    say = _Say(f"{rec_en(recs)} re-attributed {en}", f"{rec_zh(recs)}重新归属：{zh}", d)
    if d.get("officer") is not None:
        say.fields(("unit", "unit {}", "单位 {}"), ("serial", "device {}", "设备 {}"))
    return say.fields(
        ("assignment", "assignment {}", "配发记录 {}"),
        ("valid_from", "from {}", "自 {}"),
        ("valid_to", "to {}", "至 {}"),
        _REASON,
    ).done()


def _retention_updated(
    d: dict[str, Any], recs: tuple[int, ...], mine: frozenset[int]
) -> tuple[str, str]:
    say = _Say("retention changed", "保存期限变更", d)
    tiers = d.get("tiers")
    for tier, ids in sorted(tiers.items() if isinstance(tiers, dict) else ()):
        en, zh = _pair(_TIERS, tier)
        if ours := _ours(ids, mine):
            say.add(rec_en(ours), f"{{}} now {en}", f"{rec_zh(ours)}改为{zh}")
    if ours := _ours(d.get("kept"), mine):
        say.add(rec_en(ours), "{} no longer pending deletion", f"{rec_zh(ours)}撤出待删除")
    return say.fields(("reason", "because {}", "原因：{}")).done()


def _deleted(d: dict[str, Any], recs: tuple[int, ...], _: frozenset[int]) -> tuple[str, str]:
    say = _Say(f"recording {d['recording']} deleted", f"录像 {d['recording']} 已删除", d)
    say.fields(("sha256", "SHA-256 {}", "SHA-256 {}"))
    if d.get("tier"):
        en, zh = _pair(_TIERS, d["tier"])
        say.add(en, "tier {}", f"保存期限 {zh}")
    say.fields(("reason", "reason “{}”", "原因“{}”"))
    if isinstance(removed := d.get("object_removed"), bool):
        say.add(
            "removed from" if removed else "kept in (another recording shares it)",
            "file {} the store",
            "存储文件已移除" if removed else "存储文件仍被其他录像使用，保留",
        )
    return say.done()


def _planned(d: dict[str, Any], recs: tuple[int, ...], mine: frozenset[int]) -> tuple[str, str]:
    discs = [x for x in d.get("discs") or [] if isinstance(x, dict)]
    labels = [str(x.get("label")) for x in discs if _ours(x.get("recordings"), mine)]
    no = d.get("export")
    say = _Say(f"export {no} planned for {rec_en(recs)}", f"导出计划 {no}，含{rec_zh(recs)}", d)
    say.fields(("medium", "medium {}", "介质 {}")).add(labels, "on disc(s) {}", "光盘 {}")
    say.fields(("copies", "{} copies", "{} 份"), ("approved_by", "approved by {}", "批准人 {}"))
    return say.fields(_REASON).done()


def _burned(d: dict[str, Any], recs: tuple[int, ...], _: frozenset[int]) -> tuple[str, str]:
    label, ok = d.get("label"), d.get("ok") is True
    en = f"disc {label} burned, read back {'matches' if ok else 'does NOT match'} the image"
    zh = f"光盘 {label} 已刻录，回读{'与镜像一致' if ok else '与镜像不一致'}"
    return _Say(en, zh, d).fields(("drive", "drive {}", "刻录机 {}")).done()


def _audit(d: dict[str, Any], recs: tuple[int, ...], mine: frozenset[int]) -> tuple[str, str]:
    failures = [f for f in d.get("failures") or [] if isinstance(f, dict)]
    failed = [f for f in failures if _ours(f.get("recordings"), mine)]
    if not failed:
        return (
            f"fixity audit re-hashed {rec_en(recs)}: SHA-256 matches",
            f"完整性审计重新计算{rec_zh(recs)}的 SHA-256：一致",
        )
    say = _Say(
        f"fixity audit: {rec_en(recs)} do NOT match their SHA-256",
        f"完整性审计：{rec_zh(recs)}的 SHA-256 不一致",
    )
    for f in failed:
        say.add(f"{f.get('sha256')} {f.get('found')}", "{}", "{}")
    return say.done()


def _requested(d: dict[str, Any], recs: tuple[int, ...], _: frozenset[int]) -> tuple[str, str]:
    en, zh = _pair(_ACTIONS, d.get("action"))
    no = d.get("request")
    say = _Say(f"request {no} to {en} {rec_en(recs)}", f"申请 {no}：{zh}{rec_zh(recs)}", d)
    say.fields(("case", "case {}", "案件 {}"), ("for_party", "for {}", "用于 {}"))
    return say.fields(("until", "until {}", "期限至 {}"), _REASON).done()


DESCRIPTIONS: Mapping[str, _Describe] = {
    "recording.ingested": _Kind(
        "ingested as recording {recording}",
        "入库为录像 {recording}",
        (
            ("sha256", "SHA-256 {}", "SHA-256 {}"),
            ("size", "{:,} bytes", "{:,} 字节"),
            ("session", "session {}", "会话 {}"),
            ("device_serial", "device {}", "设备 {}"),
            ("officer", "officer {}", "警员 {}"),
            ("unit", "unit {}", "单位 {}"),
            ("recorded_start", "recorded from {}", "拍摄开始 {}"),
            ("source_path", "camera file {}", "源文件 {}"),
            ("flags", "flags: {}", "标记：{}"),
        ),
    ),
    "recording.tagged": _Kind(
        "labelled {R}",
        "标注{R}",
        (
            ("cause", "cause “{}”", "案由“{}”"),
            ("parties_added", "parties added: {}", "新增当事人：{}"),
            ("categories_added", "categories added: {}", "新增类别：{}"),
            ("categories_removed", "categories removed: {}", "移除类别：{}"),
            ("note", "note “{}”", "备注“{}”"),
            _REASON,
        ),
    ),
    "recording.confidential": _confidential,
    "case.created": _Kind(
        "case {case} created",
        "创建案件 {case}",
        (
            ("cause", "cause “{}”", "案由“{}”"),
            ("parties", "parties: {}", "当事人：{}"),
            ("categories", "categories: {}", "类别：{}"),
        ),
    ),
    "case.linked": _linked,
    "case.unlinked": _Kind(
        "{R} unlinked from case {case}", "{R}解除与案件 {case} 的关联", (_REASON,)
    ),
    "case.closed": _Kind("case {case} closed", "案件 {case} 结案", (_REASON,)),
    "case.reopened": _Kind("case {case} reopened", "案件 {case} 重新开启", (_REASON,)),
    "hold.set": _hold_set,
    "hold.released": _Kind("hold {hold} released", "解除证据保全 {hold}", (_REASON,)),
    "device.assigned": _assigned,
    "retention.updated": _retention_updated,
    "retention.pending": _Kind(
        "{R} marked for deletion",
        "{R}列入待删除",
        (
            ("delete_after", "to be deleted after {}", "{} 后删除"),
            ("as_of", "as of {}", "判定时间 {}"),
        ),
    ),
    "retention.deleted": _deleted,
    "retention.restored": _Kind(
        "recording {recording} restored from pending deletion",
        "录像 {recording} 撤销待删除",
        (("keep_until", "kept until {}", "保留至 {}"), _REASON),
    ),
    "report.spot_check": _Kind(
        "{R} drawn for spot-check review",
        "{R}被抽中复核",
        (
            ("seed", "seed {}", "随机种子 {}"),
            ("sample", "sample of {}", "抽取 {} 条"),
            ("population", "out of {}", "共 {} 条"),
        ),
    ),
    "export.planned": _planned,
    "export.disc_built": _Kind(
        "disc {label} built with {R}",
        "光盘 {label} 镜像生成，含{R}",
        (
            ("export", "export {}", "导出 {}"),
            ("image_sha256", "image SHA-256 {}", "镜像 SHA-256 {}"),
        ),
    ),
    "export.disc_burned": _burned,
    "audit.done": _audit,
    "access.requested": _requested,
    "access.approved": _Kind(
        "request {request} approved",
        "申请 {request} 已批准",
        (("until", "valid until {}", "有效期至 {}"), ("note", "note “{}”", "备注“{}”")),
    ),
    "access.refused": _Kind("request {request} refused", "申请 {request} 被驳回", (_REASON,)),
    "access.viewed": _Kind(
        "{R} viewed",
        "{R}被查看",
        (("request", "under request {}", "依据申请 {}"), ("until", "access until {}", "权限至 {}")),
    ),
    "access.copied": _Kind(
        "{R} copied",
        "{R}被复制",
        (
            ("request", "under request {}", "依据申请 {}"),
            ("for_party", "for {}", "交付 {}"),
            ("package_sha256", "package SHA-256 {}", "复制包 SHA-256 {}"),
        ),
    ),
    "access.denied": _Kind(
        "{op} on {R} refused",
        "对{R}的操作 {op} 被拒绝",
        (("needs", "needs role {}", "需要角色 {}"),),
    ),
}


def describe(entry: LogEntry, concerns: Sequence[int], mine: Iterable[int] = ()) -> tuple[str, str]:
    """(English, Chinese): one sentence each on what `entry` records about `concerns`.

    `mine` are the report's recordings (other ids the entry names are only
    counted). A kind without a description, or an entry whose fields are not
    as expected, still gets a sentence naming its kind: never an exception.
    """
    fn = DESCRIPTIONS.get(entry.kind)
    data = entry.data
    if entry.kind == "case.created" and "case" not in data:
        data = {**data, "case": data.get("no")}  # older entries: `no`
    if fn is not None:
        try:
            return fn(data, tuple(concerns), frozenset(mine) | frozenset(concerns))
        except (AttributeError, TypeError, ValueError, KeyError, IndexError):
            pass  # a malformed entry: said by its kind below
    return unknown_kind(entry)


def unknown_kind(entry: LogEntry) -> tuple[str, str]:
    """The sentence of an entry whose kind this dockd cannot describe."""
    case = case_named(entry)
    return (
        f"{entry.kind}{f' (case {case})' if case else ''}: no description for this kind of entry",
        f"{entry.kind}{f'（案件 {case}）' if case else ''}：此类日志条目无说明",
    )
