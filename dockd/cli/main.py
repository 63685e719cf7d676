"""The `dockd` command line (click). Human output by default, --json for machines."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from dockd import logs
from dockd.chunks import return_buffers_to_the_system
from dockd.cli.access import approve, copy, custody, refuse, request_group, view
from dockd.cli.archive import export, verify_disc_command
from dockd.cli.common import EXIT_CODES
from dockd.cli.daemon import doctor, run, status
from dockd.cli.demo import demo
from dockd.cli.devices import device
from dockd.cli.integrity import audit, checkpoint, key, log_group, proof, verify
from dockd.cli.labels import case, hold, tag
from dockd.cli.recordings import ingest, list_, show
from dockd.cli.replicate import replicate_group
from dockd.cli.reports import gap, report
from dockd.cli.retention import restore, retention, sweep
from dockd.errors import DockdError, UsageError
from dockd.settings import load as load_config


class DockdGroup(click.Group):
    """Turns every DockdError into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DockdError as exc:
            click.echo(f"dockd: error: {self.spelled(exc)}", err=True)
            sys.exit(exc.exit_code)

    def spelled(self, exc: DockdError) -> str:
        """The message, its field (the service's word) spelled as this CLI's option.

        The service names the argument at fault ("reason: must not be empty");
        the option that sets it is found by its parameter name in the command
        tree (valid_to is --to), else the field's own spelling (--party).
        """
        message = str(exc)
        field = exc.field if isinstance(exc, UsageError) else None
        if field is None:
            return message
        flag = _option_for(self, field) or "--" + field.replace("_", "-")
        if message.startswith(f"{field}:"):
            return flag + message[len(field) :]
        return f"{message} ({flag})"


def _option_for(command: click.Command, name: str) -> str | None:
    """The long option of the parameter `name` somewhere under `command`, if one."""
    for param in command.params:
        if param.name == name and isinstance(param, click.Option):
            return max(param.opts, key=len)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            if (found := _option_for(sub, name)) is not None:
                return found
    return None


@click.group(
    cls=DockdGroup, help=f"dockd: evidence ingest for body-worn-camera docks.\n\n{EXIT_CODES}"
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Configuration file (default /etc/dockd/dockd.toml).",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="State directory (default /var/lib/dockd, or $DOCKD_STATE_DIR).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log progress events to stderr.")
@click.version_option(package_name="dockd")
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, state_dir: Path | None, verbose: bool
) -> None:
    config = load_config(config_path, state_dir)
    logs.configure(
        "info" if verbose else "warning" if config.log.level == "info" else config.log.level,
        config.log.format,
    )
    ctx.obj = config


for _command in (
    ingest, list_, show, verify, checkpoint, proof, audit, log_group, key, demo,
    run, status, doctor, device, tag, case, hold, retention, sweep, restore, report, gap,
    export, verify_disc_command, request_group, approve, refuse, view, copy, custody,
    replicate_group,
):  # fmt: skip
    cli.add_command(_command)


def main() -> None:
    return_buffers_to_the_system()
    cli(prog_name="dockd")
