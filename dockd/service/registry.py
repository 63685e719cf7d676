"""The device registry: dockings on the device row, assignments, re-attribution, device status."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import structlog

from dockd.clock import isoformat_utc, parse_utc
from dockd.devices.identity import DeviceIdentity, check_serial
from dockd.devices.registry import Assignment, assignment_at, labels_for
from dockd.errors import UsageError
from dockd.retention.overdue import (
    DeviceFacts,
    OverdueDevice,
    last_sessions,
    not_docked,
    overdue_devices,
)
from dockd.service.base import ServiceBase
from dockd.service.values import DeviceStatus

log = structlog.get_logger("dockd.service")


class Registry(ServiceBase):
    """Device registration, assignments, re-attribution, device status."""

    # -- devices and assignments (seed rule R2) -----------------------------------

    def _register_device(
        self, serial: str, profile: str, device: DeviceIdentity | None, now: datetime
    ) -> None:
        """Record a docking on the device row (registry of known devices)."""
        known = self.catalog.device(serial)
        values: dict[str, Any] = {
            "serial": serial,
            "profile": profile,
            "last_docked": isoformat_utc(now),
            "last_slot": device.slot if device else None,
        }
        if device is not None:
            values |= {
                "vendor_id": device.vendor_id,
                "model_id": device.model_id,
                "vendor": device.vendor,
                "model": device.model,
            }
        if known is None:
            values["first_seen"] = isoformat_utc(now)
        # The docking's own session.started entry records it: no entry of its own.
        self.catalog.upsert_device(values)

    def assign_device(
        self,
        serial: str,
        *,
        officer: str | None,
        unit: str | None,
        device_number: str | None = None,
        valid_from: datetime | None = None,
        valid_to: datetime | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> tuple[Assignment, list[int]]:
        """Append an assignment (officer None: back to the pool) and re-attribute.

        Recordings of this device made within the period get the officer and
        unit now in force at their start time; the ids changed are in the
        entry. Returns the assignment and those ids.
        """
        check_serial(serial)
        if officer is not None and not (officer.strip() and (unit or "").strip()):
            raise UsageError(
                "an assignment needs both an officer and a unit",
                field="unit" if officer.strip() else "officer",
            )
        now = self.clock.now()
        start = valid_from or now
        if valid_to is not None and valid_to <= start:
            raise UsageError(
                f"the assignment's end ({isoformat_utc(valid_to)}) must be after its start "
                f"({isoformat_utc(start)})",
                field="valid_to",
            )
        with self.catalog.transaction():
            assignment_id = self.catalog.next_id("assignments")
            existing = self.catalog.assignments(serial)
            proposed = Assignment(
                assignment_id, serial, officer, unit, device_number, start, valid_to, now, 0
            )
            changed = self._reattribute(serial, [*existing, proposed])
            facts = {k: v for k, v in proposed.as_json().items() if k not in ("id", "log_seq")}
            entry = self._log(
                "device.assigned",
                {
                    **facts,
                    "assignment": assignment_id,
                    "reason": reason,
                    "by": actor,
                    "reattributed": changed,
                },
                now,
            )
            self.catalog.insert_assignment(
                {
                    **proposed.as_json(),
                    "id": assignment_id,
                    "reason": reason,
                    "log_seq": entry.seq,
                }
            )
            if self.catalog.device(serial) is None:
                self.catalog.upsert_device({"serial": serial, "first_seen": isoformat_utc(now)})
        log.info(
            "device.assigned",
            serial=serial,
            officer=officer,
            unit=unit,
            assignment=assignment_id,
            reattributed=len(changed),
        )
        return dataclasses.replace(proposed, log_seq=entry.seq), changed

    def _reattribute(self, serial: str, assignments: list[Assignment]) -> list[int]:
        """Bring officer/unit/flags of this device's recordings in line; caller holds the txn."""
        changed: list[int] = []
        for rec in self.catalog.recordings_of_device(serial):
            labels = labels_for(
                assignments,
                parse_utc(rec.recorded_start),
                name_officer=rec.name_officer,
                name_device=rec.name_device,
                flags=rec.flags,
            )
            values = {
                "officer": labels.officer,
                "unit": labels.unit,
                "device_number": labels.device_number,
                "flags": list(labels.flags),
            }
            current = {
                "officer": rec.officer,
                "unit": rec.unit,
                "device_number": rec.device_number,
                "flags": sorted(rec.flags),
            }
            if values != current:
                self.catalog.update_attribution(rec.id, values)
                changed.append(rec.id)
        return changed

    def officer_of(self, serial: str) -> str | None:
        """The number of the officer `serial` is assigned to now (for the dock's screen)."""
        current = assignment_at(self.catalog.assignments(serial), self.clock.now())
        return current.officer if current is not None else None

    def devices(self) -> list[DeviceStatus]:
        """Every device known from dockings or assignments, with who has it now."""
        now = self.clock.now()
        counts = self.catalog.recording_counts_by_device()
        result: list[DeviceStatus] = []
        limit = timedelta(hours=self.config.devices.overdue_hours)
        for row in self.catalog.devices():
            history = self.catalog.assignments(row["serial"])
            current = assignment_at(history, now)
            last = parse_utc(row["last_docked"]) if row.get("last_docked") else None
            overdue = current is not None and not_docked(last, current.valid_from, now, limit)
            result.append(
                DeviceStatus(
                    serial=row["serial"],
                    vendor=row.get("vendor") or "",
                    model=row.get("model") or "",
                    profile=row.get("profile") or "",
                    first_seen=row["first_seen"],
                    last_docked=row.get("last_docked"),
                    last_slot=row.get("last_slot"),
                    recordings=int(counts.get(row["serial"], 0)),
                    current=current,
                    history=tuple(history),
                    overdue=overdue,
                )
            )
        return result

    def overdue_devices(self) -> tuple[OverdueDevice, ...]:
        """The devices overdue for docking now (dockd.retention.overdue, both rules)."""
        facts = []
        for status in self.devices():
            current = status.current
            facts.append(
                DeviceFacts(
                    serial=status.serial,
                    assigned=current is not None,
                    device_number=current.device_number if current else None,
                    officer=current.officer if current else None,
                    unit=current.unit if current else None,
                    last_docked=parse_utc(status.last_docked) if status.last_docked else None,
                    assigned_from=current.valid_from if current else None,
                    not_docked=status.overdue,
                )
            )
        sessions = last_sessions(self.catalog.sessions())
        return overdue_devices(facts, sessions, self.clock.now())
