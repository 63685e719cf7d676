"""What the dock's screen shows, one tile per slot (pure: the daemon's status in, tiles out).

An officer at the end of a shift reads a tile in two seconds: the camera,
one word for its state in large type (green "safe to undock" once done), a
progress bar by bytes with the time left while copying, the deadline of its
oldest recording (R1: red once past), and when something went wrong what it
means for them and what to do, in their words, not a traceback. No names
and no footage: the camera's serial, the officer number it is assigned to,
and the slot only (the screen is
read-only and has no login). Chinese by default, English on request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from dockd.clock import parse_utc

LANGS = ("zh", "en")

# state -> (tone, zh, en). Tone picks the colour: busy (blue), done (green),
# wait (amber: leave it docked), error (red).
_STATES: Mapping[str, tuple[str, str, str]] = {
    "detected": ("busy", "已识别", "detected"),
    "mounting": ("busy", "准备中", "getting ready"),
    "queued": ("busy", "排队中", "waiting its turn"),
    "scanning": ("busy", "检查文件", "looking at the files"),
    "copying": ("busy", "正在复制", "copying"),
    "wiping": ("busy", "正在清除记录仪", "clearing the camera"),
    "waiting for upload": ("wait", "等待上传 — 请勿取下", "waiting for upload — leave it docked"),
    "done": ("done", "完成 — 可以取下", "done — safe to undock"),
    "error": ("error", "需要处理", "needs attention"),
}
_UNKNOWN = ("busy", "处理中", "working")

# What an error means to the officer and what to do: (substring of the daemon's
# reason, zh, en); the first that matches wins.
_ERRORS: Sequence[tuple[str, str, str]] = (
    ("removed before", "取下过早：未复制的文件仍在记录仪上。请重新插入。",
     "Taken out too early: the files not yet copied are still on the camera. Dock it again."),
    ("taken out before the upload", "上传完成前被取下：文件仍在记录仪上。请重新插入。",
     "Taken out before the upload: the files are still on the camera. Dock it again."),
    ("vanished", "记录仪存储断开：文件仍在记录仪上。请重新插入。",
     "The camera's storage went away: its files are still on it. Dock it again."),
    ("shutting down", "系统正在重启：稍后自动继续，请勿取下。",
     "The system is restarting: it carries on by itself. Leave it docked."),
    ("could not be ingested", "部分文件未能复制，仍在记录仪上。请联系管理员。",
     "Some files could not be copied; they are still on the camera. Tell IT."),
    ("could not be cleared", "文件已保存，但未能从记录仪清除。请联系管理员。",
     "The files are saved but could not be cleared from the camera. Tell IT."),
)  # fmt: skip
_OTHER_ERROR = ("出现问题，文件仍在记录仪上。请联系管理员。",
                "Something went wrong; the files are still on the camera. Tell IT.")  # fmt: skip


# The USB port in a udev ID_PATH ("pci-0000:00:14.0-usb-0:1.4:1.0" -> "1.4").
_PORT = re.compile(r"-usb-\d+:([0-9.]+)")


def slot_label(slot: str, lang: str) -> str:
    """What an officer calls the slot: its USB port number (a hub's ports dotted),
    or the card reader's folder; the udev path itself is for IT."""
    if slot.startswith("drop:"):
        return ("读卡器 " if lang == "zh" else "card reader ") + slot.removeprefix("drop:")
    found = _PORT.search(slot)
    if found is None:
        return slot
    return ("接口 " if lang == "zh" else "port ") + found.group(1)


@dataclass(frozen=True)
class Tile:
    slot: str
    label: str  # slot_label
    serial: str
    officer: str | None  # the officer number it is assigned to (a number, never a name)
    kind: str  # camera | batch (a card reader's folder)
    state: str  # the daemon's slot state
    tone: str  # busy | wait | done | error
    headline: str  # the state in the screen's language
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    percent: int | None  # by bytes, while copying
    seconds_left: int | None
    deadline: str | None  # the oldest recording's offload deadline (R1), UTC
    late: bool  # that deadline has passed
    message: str | None  # what an error means and what to do, for an officer
    detail: str | None  # the daemon's own words (for IT)
    since: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def tiles(status: Mapping[str, Any], now: datetime, lang: str = "zh") -> list[Tile]:
    """The screen's tiles from the daemon's status (runner/daemon.py `status()`)."""
    if lang not in LANGS:
        lang = "zh"
    return [_tile(slot, now, lang) for slot in status.get("slots", [])]


def _tile(slot: Mapping[str, Any], now: datetime, lang: str) -> Tile:
    state = str(slot.get("state", ""))
    tone, zh, en = _STATES.get(state, _UNKNOWN)
    done, total = int(slot.get("bytes_done") or 0), int(slot.get("bytes_total") or 0)
    copying = state in ("copying", "scanning") and total > 0
    rate = float(slot.get("rate_bps") or 0.0)
    deadline = slot.get("deadline")
    late = False
    if isinstance(deadline, str):
        try:
            late = parse_utc(deadline) < now
        except ValueError:
            deadline = None
    message = detail = None
    if state == "error":
        detail = str(slot.get("error") or "")
        message = _error_words(detail, lang)
    key = str(slot.get("slot", ""))
    return Tile(
        slot=key,
        label=slot_label(key, lang),
        serial=str(slot.get("serial", "")),
        officer=str(slot["officer"]) if slot.get("officer") else None,
        kind="batch" if key.startswith("drop:") else "camera",
        state=state,
        tone=tone,
        headline=zh if lang == "zh" else en,
        files_done=int(slot.get("files_done") or 0),
        files_total=int(slot.get("files_total") or 0),
        bytes_done=done,
        bytes_total=total,
        percent=min(100, done * 100 // total) if copying else None,
        seconds_left=int((total - done) / rate) if copying and rate > 0 else None,
        deadline=deadline if isinstance(deadline, str) else None,
        late=late,
        message=message,
        detail=detail,
        since=str(slot.get("since", "")),
    )


def _error_words(reason: str, lang: str) -> str:
    for needle, zh, en in _ERRORS:
        if needle in reason:
            return zh if lang == "zh" else en
    return _OTHER_ERROR[0] if lang == "zh" else _OTHER_ERROR[1]
