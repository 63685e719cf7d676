"""What each kind of log entry says about recordings, in English and in Chinese.

The words of a custody report's events (access/custody.py): `describe(entry,
concerns, mine)` gives one line per language; an entry of a kind with no
description is still listed by `unknown_kind` (its kind and who made it),
never dropped. Other recordings an entry names are counted, not listed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockd.integrity.chain import LogEntry
from dockd.integrity.naming import case_named


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


def _in_bucket(extended: bool) -> _Describe:
    """replicate.verified / .extended: which version of whose evidence the bucket locks."""

    def describe(d: dict[str, Any], recs: tuple[int, ...], mine: frozenset[int]) -> tuple[str, str]:
        bucket = d.get("bucket")
        say = (
            _Say(
                f"lock of {rec_en(recs)} in bucket {bucket} extended",
                f"{rec_zh(recs)}在对象存储 {bucket} 的锁定期已延长",
            )
            if extended
            else _Say(
                f"{rec_en(recs)} copied to bucket {bucket} and verified there",
                f"{rec_zh(recs)}已复制至对象存储 {bucket} 并核验",
            )
        )
        for item in d.get("objects") or []:
            if isinstance(item, dict) and _ours(item.get("recordings"), mine):
                say.add(item.get("version_id"), "version {}", "版本 {}")
                say.add(item.get("retain_until"), "locked (COMPLIANCE) until {}", "合规锁定至 {}")
        return say.done()

    return describe


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
    "replicate.verified": _in_bucket(extended=False),
    "replicate.extended": _in_bucket(extended=True),
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
