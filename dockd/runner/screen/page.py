"""The dock screen's page, style and script: served by dockd itself (no CDN, no internet).

The script opens `/events` (Server-Sent Events): the daemon sends the tiles
whenever they change, and the page redraws them in place, without reload.
If the stream drops (dockd restarting), EventSource reconnects by itself and
the page says "connecting" meanwhile.
"""

from __future__ import annotations

import html

TITLE = {"zh": "执法记录仪采集站", "en": "Camera dock"}
CONNECTING = {"zh": "正在连接…", "en": "connecting…"}
EMPTY = {"zh": "请插入执法记录仪", "en": "Dock a camera"}

PAGE = """<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/screen.css">
</head>
<body data-lang="{lang}" data-empty="{empty}">
<header><h1>{title}</h1><span id="clock"></span>
<span id="link" class="connecting">{connecting}</span></header>
<main id="tiles"><p class="empty">{empty}</p></main>
<script src="/screen.js"></script>
</body>
</html>
"""

CSS = """
* { box-sizing: border-box; }
body { margin: 0; font-family: "WenQuanYi Micro Hei", "Noto Sans CJK SC", sans-serif;
       background: #101418; color: #f2f4f6; }
header { display: flex; align-items: baseline; gap: 2rem; padding: 1rem 2rem;
         background: #1c232b; }
h1 { margin: 0; font-size: 2rem; }
#clock { font-size: 1.5rem; color: #aab4be; }
#link { margin-left: auto; font-size: 1.2rem; }
#link.connecting { color: #f0b429; }
#link.live { color: #5fd38d; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(22rem, 1fr));
       gap: 1.5rem; padding: 2rem; }
.empty { font-size: 2.5rem; color: #7b8794; grid-column: 1 / -1; text-align: center; }
.tile { border-radius: 1rem; padding: 1.5rem; background: #1f2933; border: 6px solid #3e4c59; }
.tile .slot { font-size: 1.4rem; color: #aab4be; }
.tile .serial { font-size: 1.8rem; font-weight: bold; margin: 0.2rem 0 0.8rem; }
.tile .officer { font-size: 1.4rem; font-weight: normal; color: #cbd2d9; margin-left: 1rem; }
.tile .headline { font-size: 2.2rem; font-weight: bold; line-height: 1.2; }
.tile .headline > div { white-space: nowrap; }
.tile.busy { border-color: #2f80ed; }
.tile.wait { border-color: #f0b429; }
.tile.wait .headline { color: #f0b429; }
.tile.done { border-color: #27ae60; background: #123821; }
.tile.done .headline { color: #5fd38d; font-size: 3rem; }
.tile.error { border-color: #e12d39; background: #3b1216; }
.tile.error .headline { color: #ff6b6b; }
.bar { height: 1.6rem; background: #3e4c59; border-radius: 0.8rem; overflow: hidden;
       margin: 1rem 0 0.4rem; }
.bar > div { height: 100%; background: #2f80ed; transition: width 0.4s; }
.progress, .deadline { font-size: 1.3rem; color: #d9e2ec; }
.deadline.late { color: #ff6b6b; font-weight: bold; }
.message { font-size: 1.5rem; margin-top: 0.8rem; }
.detail { font-size: 0.9rem; color: #9aa5b1; margin-top: 0.5rem; }
"""

JS = """
"use strict";
const lang = document.body.dataset.lang;
const zh = lang === "zh";
const words = zh
  ? {officer: "警号", files: "文件", left: "剩余",
     deadline: "最早录像须在此前采集", late: "已超 24 小时时限",
     min: "分", sec: "秒", live: "实时", connecting: "正在连接…"}
  : {officer: "officer", files: "files", left: "left",
     deadline: "oldest footage due by", late: "past the 24 h limit",
     min: "min", sec: "s", live: "live", connecting: "connecting…"};

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function size(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n.toFixed(0)) + " " + units[i];
}

function duration(s) {
  const m = Math.floor(s / 60);
  return m ? m + " " + words.min + " " + (s % 60) + " " + words.sec : s + " " + words.sec;
}

function localTime(iso) {
  return new Date(iso).toLocaleString(zh ? "zh-CN" : "en-GB",
    {month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"});
}

function tile(t) {
  const box = el("section", "tile " + t.tone);
  box.dataset.slot = t.slot;
  box.dataset.state = t.state;
  // "done — safe to undock": one line per part, never broken inside a word.
  const head = el("div", "headline");
  for (const part of t.headline.split(" — ")) head.append(el("div", null, part));
  const where = el("div", "slot", t.label);
  where.title = t.slot;
  const who = el("div", "serial", t.serial);
  if (t.officer) who.append(el("span", "officer", words.officer + " " + t.officer));
  box.append(where, who, head);
  if (t.percent !== null) {
    const bar = el("div", "bar");
    const fill = el("div");
    fill.style.width = t.percent + "%";
    bar.append(fill);
    let text = t.files_done + "/" + t.files_total + " " + words.files + " · " +
      size(t.bytes_done) + " / " + size(t.bytes_total) + " · " + t.percent + "%";
    if (t.seconds_left !== null) text += " · " + words.left + " " + duration(t.seconds_left);
    box.append(bar, el("div", "progress", text));
  }
  if (t.deadline && t.state !== "done") {
    const d = el("div", "deadline" + (t.late ? " late" : ""),
                 t.late ? words.late + " (" + localTime(t.deadline) + ")"
                        : words.deadline + " " + localTime(t.deadline));
    box.append(d);
  }
  if (t.message) box.append(el("div", "message", t.message));
  if (t.detail) box.append(el("div", "detail", t.detail));
  return box;
}

function draw(list) {
  const main = document.getElementById("tiles");
  main.replaceChildren(...(list.length ? list.map(tile)
                                       : [el("p", "empty", document.body.dataset.empty)]));
}

function tick() {
  document.getElementById("clock").textContent = new Date().toLocaleString(
    zh ? "zh-CN" : "en-GB", {hour: "2-digit", minute: "2-digit", second: "2-digit"});
}
setInterval(tick, 1000);
tick();

const link = document.getElementById("link");
const events = new EventSource("/events?lang=" + lang);
events.onmessage = (e) => {
  draw(JSON.parse(e.data).tiles);
  link.className = "live";
  link.textContent = words.live;
};
events.onerror = () => { link.className = "connecting"; link.textContent = words.connecting; };
"""


def page(lang: str) -> str:
    return PAGE.format(
        lang=lang,
        title=html.escape(TITLE[lang]),
        empty=html.escape(EMPTY[lang]),
        connecting=html.escape(CONNECTING[lang]),
    )
