#!/bin/sh
# Install dockd on a dock (run as root; `make install` runs this).
#
# Idempotent: run it again after `git pull` to upgrade. It never overwrites an
# admin's /etc/dockd/dockd.toml; a unit or rules file that was edited in place
# is kept beside the new one as *.bak-<time> (use drop-ins instead:
# `systemctl edit dockd`).
#
# Environment:
#   DESTDIR=dir        install into dir (packaging, tests): no user or group is
#                      created, nothing is reloaded or started.
#   WHEELHOUSE=dir     offline install: pip --no-index --find-links dir (a
#                      folder of wheels for dockd's dependencies, e.g. made by
#                      `pip wheel -w dir . 'setuptools>=68' wheel` on a machine with network).
#   DOCKD_ENABLE=1     also `systemctl enable --now dockd` (systemd hosts only).
#   DOCKD_SKIP_VENV=1  do not create the venv / pip install (tests, packagers
#                      that ship the venv another way).
#   PYTHON=python3     the interpreter for the venv (3.11 or newer).
#
# Layout: a venv in /opt/dockd (the console script is /opt/dockd/bin/dockd),
# linked as /usr/local/bin/dockd, which is what the units run.
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PYTHON=${PYTHON:-python3}
WHEELHOUSE=${WHEELHOUSE:-}
DOCKD_ENABLE=${DOCKD_ENABLE:-0}
DOCKD_SKIP_VENV=${DOCKD_SKIP_VENV:-0}
VENV=/opt/dockd
GROUP=dockd

say() { printf 'dockd install: %s\n' "$*"; }
die() { printf 'dockd install: error: %s\n' "$*" >&2; exit 1; }

if [ -n "$DESTDIR" ]; then
    case $DESTDIR in /*) ;; *) die "DESTDIR must be an absolute path: $DESTDIR" ;; esac
    [ "$DESTDIR" != / ] || DESTDIR=
fi
if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    die "run as root (or set DESTDIR to stage the files elsewhere)"
fi

# install FILE MODE TARGET: copy unless identical; keep an edited target aside.
put() {
    src=$1 mode=$2 dst=$DESTDIR$3
    if [ -e "$dst" ] && ! cmp -s "$src" "$dst"; then
        backup="$dst.bak-$(date +%Y%m%d%H%M%S)"
        cp -p "$dst" "$backup"
        say "kept your edited $3 as $backup"
    fi
    install -D -m "$mode" "$src" "$dst"
}

# 1. The group owns the socket and the files dockd creates (Group=dockd in
# the unit); the system user is for tools that should talk to the daemon
# without being root. Neither can log in.
if [ -n "$DESTDIR" ]; then
    say "DESTDIR set: not creating the $GROUP group and user (do that in the package's postinst)"
else
    if ! getent group "$GROUP" >/dev/null; then
        groupadd --system "$GROUP"
        say "created system group $GROUP"
    fi
    if ! getent passwd "$GROUP" >/dev/null; then
        useradd --system --gid "$GROUP" --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --comment "dockd evidence ingest" "$GROUP"
        say "created system user $GROUP"
    fi
    # The roles' groups ([access] in dockd.toml; README "Access and approvals"):
    # add people with `usermod -aG dockd,dockd-supervisor NAME`.
    for role in officer clerk supervisor archivist auditor admin confidential; do
        if ! getent group "dockd-$role" >/dev/null; then
            groupadd --system "dockd-$role"
            say "created system group dockd-$role"
        fi
    done
fi

# 2. The venv, with dockd installed from this checkout (not editable: the
# service must not run code from a working tree someone may be editing).
if [ "$DOCKD_SKIP_VENV" = 1 ]; then
    say "DOCKD_SKIP_VENV=1: not creating $DESTDIR$VENV"
else
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PYTHON is older than 3.11"
    "$PYTHON" -m venv --help >/dev/null 2>&1 \
        || die "$PYTHON has no venv module: apt-get install python3-venv"
    if [ ! -x "$DESTDIR$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$DESTDIR$VENV"
        say "created venv $DESTDIR$VENV"
    fi
    if [ -n "$WHEELHOUSE" ]; then
        [ -d "$WHEELHOUSE" ] || die "WHEELHOUSE=$WHEELHOUSE is not a directory"
        set -- --no-index --find-links "$WHEELHOUSE"
    else
        set --
    fi
    # systemd-python builds from source: needs gcc, pkg-config, libsystemd-dev
    # and python3-dev unless the wheelhouse holds a wheel of it.
    "$DESTDIR$VENV/bin/pip" install --quiet --disable-pip-version-check "$@" \
        --upgrade "$SRC" || die "pip install failed (offline? set WHEELHOUSE)"
    say "installed dockd $("$DESTDIR$VENV/bin/python" -c \
        'import importlib.metadata as m; print(m.version("dockd"))') into $DESTDIR$VENV"
fi
install -d -m 0755 "$DESTDIR/usr/local/bin"
ln -sfn "$VENV/bin/dockd" "$DESTDIR/usr/local/bin/dockd"

# 3. Units, udev rules, documentation.
for unit in "$SRC"/systemd/*.service "$SRC"/systemd/*.timer; do
    put "$unit" 0644 "/etc/systemd/system/$(basename "$unit")"
done
put "$SRC/udev-rules/70-dockd.rules" 0644 /etc/udev/rules.d/70-dockd.rules
put "$SRC/README.md" 0644 /usr/share/doc/dockd/README.md
put "$SRC/packaging/dockd.toml.example" 0644 /usr/share/doc/dockd/dockd.toml.example
put "$SRC/packaging/dockd-replicate.conf.example" 0644 /usr/share/doc/dockd/dockd-replicate.conf.example
put "$SRC/packaging/dockd-screen.service.example" 0644 /usr/share/doc/dockd/dockd-screen.service.example

# Camera filesystems loaded at boot. In its sandbox dockd cannot load modules
# (ProtectKernelModules=yes; the kernel still auto-loads them on mount), and
# its mount back-end check reads /proc/filesystems, which lists loaded ones.
modules=$(mktemp)
# sd_mod too: systemd resolves DeviceAllow=block-sd through /proc/devices when
# dockd starts, and the "sd" majors exist only once sd_mod is loaded; on a dock
# whose own disk is NVMe/eMMC/virtio that is only after the first camera
# (found in the VM suite, tests/vm).
printf '# dockd: camera disks and their filesystems (packaging/install.sh)\nsd_mod\nvfat\nexfat\nfuse\n' \
    > "$modules"
put "$modules" 0644 /etc/modules-load.d/dockd.conf
rm -f "$modules"

# 4. Configuration: created from the example only if absent, never replaced.
# 0640 root:dockd: the CLI run by members of dockd may read it.
install -d -m 0750 "$DESTDIR/etc/dockd"
config="$DESTDIR/etc/dockd/dockd.toml"
if [ -e "$config" ]; then
    say "kept existing /etc/dockd/dockd.toml (new keys: /usr/share/doc/dockd/dockd.toml.example)"
else
    install -m 0640 "$SRC/packaging/dockd.toml.example" "$config"
    say "wrote /etc/dockd/dockd.toml from the example (every key commented out: all defaults)"
fi
if [ -z "$DESTDIR" ]; then
    chgrp "$GROUP" "$DESTDIR/etc/dockd" "$config"
fi

# 5. Tell the running system, where there is one.
if [ -n "$DESTDIR" ]; then
    say "files staged under $DESTDIR"
    exit 0
fi
if command -v modprobe >/dev/null; then
    modprobe -q -a sd_mod vfat exfat fuse \
        || say "could not load all of sd_mod, vfat, exfat, fuse now (see: dockd doctor)"
fi
systemd_runs=0
if [ -d /run/systemd/system ]; then
    systemd_runs=1
    systemctl daemon-reload
    say "systemd reloaded"
else
    say "systemd is not running here: units installed, nothing reloaded"
fi
if command -v udevadm >/dev/null && udevadm control --ping --timeout=5 2>/dev/null; then
    udevadm control --reload
    say "udev rules reloaded (re-plug docked cameras, or: udevadm trigger --subsystem-match=block)"
else
    say "udevd is not running here: rules installed, nothing reloaded"
fi
if [ "$DOCKD_ENABLE" = 1 ] && [ "$systemd_runs" = 1 ]; then
    systemctl enable --now dockd.service
    say "dockd enabled and started; check: dockd doctor; journalctl -u dockd"
else
    say "next: edit /etc/dockd/dockd.toml if needed; systemctl enable --now dockd; dockd doctor"
fi
