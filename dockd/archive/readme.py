"""README.txt of an archival disc or a copy package: what it is and how to check it,
Chinese first, then English.

The file is UTF-8 with a byte-order mark and CRLF line ends, so that Windows
Notepad (old versions too) shows the Chinese and the lines; `cat` and
`less` on Linux show it as well.
"""

from __future__ import annotations

from collections.abc import Mapping

# One line of PowerShell (Windows PowerShell 5.1 and PowerShell 7) run from the disc
# root: hashes every file the manifest lists and prints OK or FAILED for each.
POWERSHELL = (
    "Get-Content -Encoding UTF8 manifest-sha256.txt | ForEach-Object { "
    "$h, $p = $_ -split '\\s+', 2; "
    "if ((Get-FileHash -Algorithm SHA256 -LiteralPath $p).Hash -eq $h) "
    '{ "OK     $p" } else { "FAILED $p" } }'
)

_LAYOUT_ZH = """\
  data/                    音视频原始文件：data/中队/执法人员/日期/编号_原文件名
  manifest-sha256.txt      data/ 下每个文件的 SHA-256 校验值
  tagmanifest-sha256.txt   其余各文件（目录、日志、本说明等）的 SHA-256 校验值
  bagit.txt, bag-info.txt  BagIt 格式声明与本盘信息
  dockd/catalog.csv        目录：每段录像的中队、执法人员、时间、案由、当事人等（可用 Excel 打开）
  dockd/catalog.json       同上，JSON 格式
  dockd/entries.jsonl      这些录像在防篡改证据日志中的记录
  dockd/proofs.json        这些记录在日志中的包含证明（RFC 9162 默克尔树）
  dockd/checkpoint.txt     经签名的日志检查点（Ed25519）
  dockd/keys.txt           核验签名用的公钥
  verify.py                完整核对脚本
  README.txt               本说明"""

_LAYOUT_EN = """\
  data/                    the original recordings: data/unit/officer/date/id_original-name
  manifest-sha256.txt      the SHA-256 of every file under data/
  tagmanifest-sha256.txt   the SHA-256 of every other file (catalog, log, this README, ...)
  bagit.txt, bag-info.txt  the BagIt declaration and this disc's details
  dockd/catalog.csv        the catalog: unit, officer, times, case cause, parties, ... of
                           each recording (opens in Excel)
  dockd/catalog.json       the same, as JSON
  dockd/entries.jsonl      the entries of these recordings in the tamper-evident evidence log
  dockd/proofs.json        proofs that those entries are in the log (RFC 9162 Merkle tree)
  dockd/checkpoint.txt     the signed checkpoint of the log (Ed25519)
  dockd/keys.txt           the public keys that verify the signature
  verify.py                the complete check
  README.txt               this file"""


def _field(info: Mapping[str, str], name: str, unknown: str) -> str:
    value = info.get(name, "").strip()
    return value or unknown


def _oxum(info: Mapping[str, str]) -> tuple[str, str] | None:
    octets, sep, count = info.get("Payload-Oxum", "").partition(".")
    if sep and octets.isdigit() and count.isdigit():
        return octets, count
    return None


def readme_text(label: str, info: Mapping[str, str]) -> str:
    """README.txt of the disc `label` with bag-info.txt labels `info` (LF line ends)."""
    origin = _field(info, "Source-Organization", "?")
    count = _field(info, "Bag-Count", "?")
    group = _field(info, "Bag-Group-Identifier", "?")
    copy = _field(info, "dockd-Copy", "?")
    date = _field(info, "Bagging-Date", "?")
    oxum = _oxum(info)
    zh_content = f"\n- 内容：{oxum[1]} 个文件，共 {oxum[0]} 字节" if oxum else ""
    en_content = f"\n- Content: {oxum[1]} files, {oxum[0]} bytes" if oxum else ""
    zh_count = count.replace(" of ", " / ")
    return f"""\
执法记录光盘 {label} / Law-enforcement recording disc {label}

================================ 中文 ================================

一、这是什么

本光盘由 dockd（执法记录仪采集站）刻录，长期保存执法记录仪拍摄的原始音视频资料
（作为证据使用、当事人有异议或投诉、阻碍执法、群体性或突发事件等情形，按规定须刻录光盘长期保存）。
文件均为原始文件，未经剪接或修改。

- 光盘编号：{label}（第 {zh_count} 张，批次 {group}）
- 副本：{copy.replace(" of ", " / ")}（同一内容的各份副本可互相核对）
- 刻录日期：{date}
- 证据日志：{origin}{zh_content}

光盘格式为 BagIt 1.0（RFC 8493），内容如下：

{_LAYOUT_ZH}

二、如何核对

manifest-sha256.txt 每行为“校验值  文件路径”，路径相对于光盘根目录（即本文件所在目录）。

1. Linux：在光盘根目录执行

     sha256sum -c manifest-sha256.txt

   每个文件应显示“OK”。出现“FAILED”或“No such file”即表示有问题。
   其余文件可同样核对：sha256sum -c tagmanifest-sha256.txt

2. Windows，单个文件：在“命令提示符”中进入光盘根目录，执行

     certutil -hashfile "data\\中队\\执法人员\\日期\\文件名" SHA256

   将显示的校验值与 manifest-sha256.txt 中该文件那一行比对（不区分大小写；
   旧版 Windows 会在每两位之间加空格，比对时忽略空格）。

   Windows，全部文件：在 PowerShell 中先进入光盘根目录（例如 Set-Location D:\\），
   再执行下面这一整行：

     {POWERSHELL}

   每个文件应显示“OK”，显示“FAILED”的文件有问题。

3. 完整核对（推荐）：需 Python 3.8 或更新版本，以及 cryptography 包
   （安装：pip install cryptography）。在光盘根目录执行

     python3 verify.py          （Windows：py verify.py）

   除上述校验值外，它还核对：检查点的签名、每条日志记录的包含证明、
   每个文件的校验值是否与采集时日志记录的一致、目录中的标签是否与日志一致。
   最后一行为“OK”即全部通过；否则逐行列出问题（文件及差异）。
   公钥最好取自独立来源（案卷中留存的公钥、更早的光盘），而非本光盘：

     python3 verify.py --key "名称+编号+公钥"

三、不一致意味着什么

校验值一致，说明文件与本光盘清单所列一致，即刻录后未损坏；但改动文件的人也可能
同时改写清单，所以只有 verify.py 的完整核对（签名与包含证明通过）才能证明这些文件
正是 dockd 从执法记录仪采集时记入证据日志的原始文件。
上述 sha256sum、certutil 与 PowerShell 命令只核对清单中列出的文件；清单之外多出的
文件由 verify.py 报告。
若某文件的校验值不符、文件缺失或多出，或 verify.py 报告问题，说明该文件或清单
自刻录后已被改动，或光盘损坏、读取出错。此时不得将该文件作为证据使用：
请换一台光驱重试，用另一份副本核对，并报告证据保管人员。

================================ English ================================

What this is
------------

This disc was written by dockd, the docking station of body-worn cameras. It keeps
original recordings that must be kept long term (used as evidence, disputed or
complained about, obstruction of officers, mass or emergency incidents, ...).
The files are the originals, not cut or edited.

- Disc: {label} ({count}, set {group})
- Copy: {copy} (the copies hold the same content and can be compared)
- Written on: {date}
- Evidence log: {origin}{en_content}

The disc is a BagIt 1.0 bag (RFC 8493):

{_LAYOUT_EN}

How to check it
---------------

Each line of manifest-sha256.txt is "checksum  path", the path relative to the disc
root (the folder of this file).

1. Linux: in the disc root run

     sha256sum -c manifest-sha256.txt

   Every file must say "OK". Any "FAILED" or "No such file" is a problem.
   The other files: sha256sum -c tagmanifest-sha256.txt

2. Windows, one file: in a Command Prompt in the disc root run

     certutil -hashfile "data\\unit\\officer\\date\\file name" SHA256

   and compare the checksum shown with the file's line in manifest-sha256.txt
   (letter case does not matter; old Windows versions print spaces between pairs of
   digits: ignore them).

   Windows, every file: in PowerShell go to the disc root (for example
   Set-Location D:\\) and run this one line:

     {POWERSHELL}

   Every file must say "OK"; a file that says "FAILED" is a problem.

3. The complete check (recommended) needs Python 3.8 or newer and the cryptography
   package (pip install cryptography). In the disc root run

     python3 verify.py          (Windows: py verify.py)

   Besides the checksums it checks the checkpoint's signature, every log entry's
   inclusion proof, that each file's checksum is the one the log recorded when dockd
   took it from the camera, and that the catalog's labels are those of the log.
   The last line says "OK" if everything holds; otherwise each problem is listed
   (the file and what differs). Take the public key from an independent copy (the
   key kept in the case file, an earlier disc) rather than from this disc:

     python3 verify.py --key "NAME+ID+KEY"

What a mismatch means
---------------------

Matching checksums show that the files are those the disc's manifest lists, i.e. not
damaged since the disc was written. Whoever changes a file can rewrite the manifest
too, so only the complete check (verify.py: signature and inclusion proofs) proves
that the files are the originals dockd recorded in its evidence log when it took
them from the cameras. The sha256sum, certutil and PowerShell commands check only
the files the manifest lists; verify.py also reports files it does not list.
A checksum that differs, a missing or an extra file, or a problem reported by
verify.py means the file or a manifest was changed after the disc was written, or
the disc is damaged or was misread. Do not use that file as evidence: try another
drive, check another copy, and report it to the custodian of the evidence.
"""


def readme_bytes(label: str, info: Mapping[str, str]) -> bytes:
    """README.txt as written to the disc: UTF-8 with a BOM, CRLF line ends."""
    text = readme_text(label, info).replace("\n", "\r\n")
    return "\ufeff".encode() + text.encode("utf-8")


# -- copy packages -------------------------------------------------------------------------

_COPY_LAYOUT_ZH = _LAYOUT_ZH.replace("本盘信息", "本复制件信息")
_COPY_LAYOUT_EN = _LAYOUT_EN.replace("this disc's details", "this copy's details")


def copy_readme_text(package: str, info: Mapping[str, str]) -> str:
    """README.txt of the copy package `package` with bag-info.txt labels `info` (LF ends)."""
    origin = _field(info, "Source-Organization", "?")
    date = _field(info, "Bagging-Date", "?")
    purpose = _field(info, "dockd-Purpose", "?")
    party = _field(info, "dockd-For-Party", "none")
    request = _field(info, "dockd-Request", "none")
    oxum = _oxum(info)
    zh_content = f"\n- 内容：{oxum[1]} 个文件，共 {oxum[0]} 字节" if oxum else ""
    en_content = f"\n- Content: {oxum[1]} files, {oxum[0]} bytes" if oxum else ""
    zh_party = "（未指明）" if party == "none" else party
    zh_request = "（无）" if request == "none" else request
    return f"""\
执法记录复制件 {package} / Copy of law-enforcement recordings {package}

================================ 中文 ================================

一、这是什么

本文件夹是 dockd（执法记录仪采集站）按经批准的申请提供的执法音视频资料复制件。
文件均为采集时的原始文件，未经剪接或修改；采集站留存了本复制件的清单。

- 复制件编号：{package}
- 用途：{purpose}
- 提供给：{zh_party}
- 申请编号：{zh_request}
- 复制日期：{date}
- 证据日志：{origin}{zh_content}

格式为 BagIt 1.0（RFC 8493），内容如下：

{_COPY_LAYOUT_ZH}

二、如何核对

manifest-sha256.txt 每行为“校验值  文件路径”，路径相对于本文件所在的文件夹。

1. Linux：在本文件夹中执行

     sha256sum -c manifest-sha256.txt

   每个文件应显示“OK”。出现“FAILED”或“No such file”即表示有问题。
   其余文件可同样核对：sha256sum -c tagmanifest-sha256.txt

2. Windows，单个文件：在“命令提示符”中进入本文件夹，执行

     certutil -hashfile "data\\中队\\执法人员\\日期\\文件名" SHA256

   将显示的校验值与 manifest-sha256.txt 中该文件那一行比对（不区分大小写；
   旧版 Windows 会在每两位之间加空格，比对时忽略空格）。

   Windows，全部文件：在 PowerShell 中先进入本文件夹（Set-Location 文件夹路径），
   再执行下面这一整行：

     {POWERSHELL}

   每个文件应显示“OK”，显示“FAILED”的文件有问题。

3. 完整核对（推荐）：需 Python 3.8 或更新版本，以及 cryptography 包
   （安装：pip install cryptography）。在本文件夹中执行

     python3 verify.py          （Windows：py verify.py）

   除上述校验值外，它还核对：检查点的签名、每条日志记录的包含证明、
   每个文件的校验值是否与采集时日志记录的一致、目录中的标签是否与日志一致。
   最后一行为“OK”即全部通过；否则逐行列出问题（文件及差异）。
   公钥最好取自独立来源（案卷中留存的公钥、更早的光盘），而非本文件夹：

     python3 verify.py --key "名称+编号+公钥"

三、不一致意味着什么

校验值一致，说明文件与本复制件清单所列一致；但改动文件的人也可能同时改写清单，
所以只有 verify.py 的完整核对（签名与包含证明通过）才能证明这些文件正是 dockd
从执法记录仪采集时记入证据日志的原始文件。本复制件只含上述录像在日志中的记录，
它证明这些记录在日志中，不证明日志中没有关于它们的其他记录。
若某文件的校验值不符、文件缺失或多出，或 verify.py 报告问题，说明该文件或清单
自复制后已被改动或损坏。此时不得将该文件作为证据使用，请向提供单位索取核对。

================================ English ================================

What this is
------------

This folder is a copy of law-enforcement recordings that dockd, the docking station
of body-worn cameras, made for an approved request. The files are the originals as
taken from the cameras, not cut or edited; the station keeps this copy's manifests.

- Copy: {package}
- Purpose: {purpose}
- For: {party}
- Request: {request}
- Copied on: {date}
- Evidence log: {origin}{en_content}

The folder is a BagIt 1.0 bag (RFC 8493):

{_COPY_LAYOUT_EN}

How to check it
---------------

Each line of manifest-sha256.txt is "checksum  path", the path relative to the folder
of this file.

1. Linux: in this folder run

     sha256sum -c manifest-sha256.txt

   Every file must say "OK". Any "FAILED" or "No such file" is a problem.
   The other files: sha256sum -c tagmanifest-sha256.txt

2. Windows, one file: in a Command Prompt in this folder run

     certutil -hashfile "data\\unit\\officer\\date\\file name" SHA256

   and compare the checksum shown with the file's line in manifest-sha256.txt
   (letter case does not matter; old Windows versions print spaces between pairs of
   digits: ignore them).

   Windows, every file: in PowerShell go to this folder (Set-Location FOLDER) and run
   this one line:

     {POWERSHELL}

   Every file must say "OK"; a file that says "FAILED" is a problem.

3. The complete check (recommended) needs Python 3.8 or newer and the cryptography
   package (pip install cryptography). In this folder run

     python3 verify.py          (Windows: py verify.py)

   Besides the checksums it checks the checkpoint's signature, every log entry's
   inclusion proof, that each file's checksum is the one the log recorded when dockd
   took it from the camera, and that the catalog's labels are those of the log.
   The last line says "OK" if everything holds; otherwise each problem is listed.
   Take the public key from an independent copy (the key kept in the case file, an
   earlier disc) rather than from this folder:

     python3 verify.py --key "NAME+ID+KEY"

What a mismatch means
---------------------

Matching checksums show that the files are those the manifest lists. Whoever changes
a file can rewrite the manifest too, so only the complete check (verify.py: signature
and inclusion proofs) proves that the files are the originals dockd recorded in its
evidence log. This copy holds only the log entries about these recordings: it proves
they are in the log, not that the log holds no other entries about them.
A checksum that differs, a missing or an extra file, or a problem reported by
verify.py means the file or a manifest was changed or damaged after the copy was
made. Do not use that file as evidence; ask the office that made the copy.
"""


def copy_readme_bytes(package: str, info: Mapping[str, str]) -> bytes:
    """A copy package's README.txt: UTF-8 with a BOM, CRLF line ends."""
    text = copy_readme_text(package, info).replace("\n", "\r\n")
    return "\ufeff".encode() + text.encode("utf-8")
