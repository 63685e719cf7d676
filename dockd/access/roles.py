"""Who may do what (R6): roles from Unix groups, and one permission table.

Pure but for the group lookup, which is passed in (`grp` by default). The
table (PERMISSIONS) names, for every operation of the request table
(runner/operations.py OPERATIONS), the roles that may ask for it; an
operation it does not name is refused (default deny), and a test checks that
the two tables name the same operations.

Roles (issue 15; 002 Art. 20, 004 Art. 18: viewing and copying need the
approval of the unit's head):

  officer     docks cameras; may ask to view or copy, and see the requests
  clerk       device assignments and labels (tags)
  supervisor  approves or refuses requests (never their own), cases, holds,
              confidential marking, interruptions' explanations, spot checks
  archivist   exports and discs (with an approved export request)
  auditor     read-only: status, devices, proofs, custody reports, log exports,
              audits
  admin       configuration (reload), key rotation, sweep, restore

`confidential` is a grant, not a role: the approver of a request that takes
in a recording marked confidential needs it besides `supervisor`. Root
(uid 0) holds every role and the grant: it owns the files anyway.
"""

from __future__ import annotations

import grp
import pwd
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dockd.config import AccessConfig
from dockd.errors import NotPermitted

ROLES = ("officer", "clerk", "supervisor", "archivist", "auditor", "admin")
CONFIDENTIAL = "confidential"  # the grant (AccessConfig.confidential)
EVERYONE = frozenset(ROLES)

_READERS = frozenset({"supervisor", "archivist", "auditor", "admin"})

# operation -> the roles that may ask for it. Beside OPERATIONS, name for name.
PERMISSIONS: dict[str, frozenset[str]] = {
    "status": EVERYONE,
    "reload": frozenset({"admin"}),
    "devices": frozenset({"clerk", "supervisor", "auditor", "admin"}),
    "checkpoint": _READERS,
    "audit": frozenset({"auditor", "admin"}),
    "key.rotate": frozenset({"admin"}),
    "device.assign": frozenset({"clerk"}),
    "tag": frozenset({"clerk", "supervisor"}),
    "recording.confidential": frozenset({"supervisor"}),
    "case.create": frozenset({"supervisor"}),
    "case.link": frozenset({"supervisor"}),
    "case.unlink": frozenset({"supervisor"}),
    "case.close": frozenset({"supervisor"}),
    "case.reopen": frozenset({"supervisor"}),
    "hold.set": frozenset({"supervisor"}),
    "hold.release": frozenset({"supervisor"}),
    "retention.sweep": frozenset({"admin"}),
    "retention.restore": frozenset({"admin"}),
    "report.spot_check": frozenset({"supervisor", "auditor"}),
    "report.compliance": frozenset({"supervisor", "auditor", "admin"}),
    "gap.explain": frozenset({"supervisor"}),
    "export.build": frozenset({"archivist"}),
    "export.resume": frozenset({"archivist"}),
    "export.burn": frozenset({"archivist"}),
    # Anyone with a role may ask; the service checks who asked and what was approved.
    "request.create": EVERYONE,
    "request.list": EVERYONE,
    "request.approve": frozenset({"supervisor"}),
    "request.refuse": frozenset({"supervisor"}),
    "access.view": EVERYONE,
    "access.copy": EVERYONE,
    "custody": _READERS,
    "log.export": _READERS,
    "proof.inclusion": _READERS,
}


@dataclass(frozen=True)
class Identity:
    """Who is asking: the peer's credentials at connect time (SO_PEERCRED, SO_PEERGROUPS)."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    name: str | None = None
    # The person behind a root shell, as root's client says (sudo's SUDO_USER):
    # root could do anything anyway, so its word is taken; nobody else's is.
    login: str | None = None

    @property
    def actor(self) -> str:
        """`name(uid)`, and the login behind it when another (`root(0) via sudo by
        wang`): as log entries record the one who asked, and four eyes tells them apart."""
        who = f"{self.name or 'uid'}({self.uid})"
        if self.login and self.login != self.name:
            return f"{who} via sudo by {self.login}"
        return who

    @property
    def root(self) -> bool:
        return self.uid == 0

    @classmethod
    def of_uid(
        cls, uid: int, gid: int, groups: Iterable[int] = (), login: str | None = None
    ) -> Identity:
        try:
            name: str | None = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = None
        return cls(uid, gid, tuple(sorted(set(groups) | {gid})), name, login)


def _gid_of_name(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def gids_of(entries: Iterable[str], lookup: Callable[[str], int | None] = _gid_of_name) -> set[int]:
    """The group ids that config entries name: a number is a gid, a name is looked up."""
    found: set[int] = set()
    for entry in entries:
        gid = int(entry) if entry.isdigit() else lookup(entry)
        if gid is not None:
            found.add(gid)
    return found


def roles_of(
    who: Identity,
    access: AccessConfig,
    lookup: Callable[[str], int | None] = _gid_of_name,
) -> frozenset[str]:
    """The roles (and the confidential grant) `who` holds by their groups; root all."""
    if who.root:
        return EVERYONE | {CONFIDENTIAL}
    mine = set(who.groups) | {who.gid}
    held = {
        role for role in (*ROLES, CONFIDENTIAL) if mine & gids_of(getattr(access, role), lookup)
    }
    return frozenset(held)


def needed(op: str) -> frozenset[str]:
    """The roles that may ask for `op`; empty (nobody but root) if the table has no entry."""
    return PERMISSIONS.get(op, frozenset())


def check(op: str, who: Identity, roles: frozenset[str]) -> None:
    """Refuse `op` (NotPermitted, exit 5) unless `roles` meet the table; root always may."""
    if who.root:
        return
    allowed = needed(op)
    if roles & allowed:
        return
    if not allowed:
        raise NotPermitted(f"{op}: not permitted to anyone but root ({who.actor})")
    raise NotPermitted(
        f"{op}: not permitted to {who.actor}: it needs the role "
        + " or ".join(sorted(allowed))
        + f" (held: {', '.join(sorted(roles - {CONFIDENTIAL})) or 'none'})"
    )


@dataclass(frozen=True)
class Caller:
    """Who asks for an operation, with the roles they hold: what the service checks
    four eyes and the confidential grant against, and what log entries record."""

    identity: Identity
    roles: frozenset[str]

    @property
    def actor(self) -> str:
        return self.identity.actor

    def holds(self, role: str) -> bool:
        return self.identity.root or role in self.roles
