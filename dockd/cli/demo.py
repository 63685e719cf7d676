"""`dockd demo`: a synthetic camera docked into a temporary state directory."""

from __future__ import annotations

import shutil
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import click

from dockd.cli.common import out
from dockd.cli.integrity import print_verify
from dockd.cli.recordings import print_report
from dockd.clock import SystemClock
from dockd.config import Config
from dockd.devices.profiles import make_profile
from dockd.runner.session import run_session
from dockd.service import REGISTRY_FLAGS, Service


@click.command()
@click.option("--clips", default=3, show_default=True, help="How many real clips to make.")
@click.pass_context
def demo(ctx: click.Context, clips: int) -> None:
    """Dock a synthetic camera into a temporary state directory and show the result."""
    from dockd.demo import DEMO_SERIAL, build_camera

    config: Config = ctx.obj
    state_dir = (
        Path(tempfile.mkdtemp(prefix="dockd-demo-state-"))
        if ctx.parent and ctx.parent.params.get("state_dir") is None
        else config.state_dir
    )
    config = config.with_state_dir(state_dir)
    camera = Path(tempfile.mkdtemp(prefix="dockd-demo-camera-"))
    clock = SystemClock()
    try:
        out.print(f"building a synthetic camera in {camera} ({clips} clips + 1 corrupt clip) …")
        build_camera(
            camera, clock.now(), config.profiles.camera_timezone, clips=clips, device=DEMO_SERIAL
        )
        profile = make_profile("gat947", config.profiles)
        with Service(config, clock) as service:
            # Handed out the day before, as a dock's registry would have it (R2).
            # The serial is the one the camera writes into its file names (GA/T 947),
            # so that the report, `dockd list` and the names all say DSJ0001.
            service.assign_device(
                DEMO_SERIAL,
                officer="012345",
                unit="一中队",
                device_number="07",
                valid_from=clock.now() - timedelta(days=1),
                reason="demo",
                actor="demo",
            )
            report = run_session(service, camera, DEMO_SERIAL, profile, wipe=True)
            print_report(report)
            result = service.verify()
            note = service.checkpoint()
        print_verify(result)
        out.print("signed checkpoint of the evidence log:")
        out.print(note, markup=False, end="")
    finally:
        shutil.rmtree(camera, ignore_errors=True)
    out.print(f"state kept in {state_dir} (try: dockd --state-dir {state_dir} list)")
    flagged = {flag for o in report.flagged for flag in o.recording.flags} - REGISTRY_FLAGS
    as_expected = result.ok and not report.failed and flagged <= {"unreadable_media"}
    sys.exit(0 if as_expected else 1)
