"""What the CLI tests share: a state directory and config, and the CLI run in-process.

`CliEnv.run` calls the real click command (CliRunner) on a real state
directory; the runtime directory is the test's own and empty, so no daemon
answers and changes are made directly (as root would).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from dockd.cli import cli
from dockd.clock import SystemClock
from dockd.service import Service
from dockd.settings import load as load_config


def write_config(folder: Path) -> Path:
    """A dockd.toml in `folder`: no free-space floor, no retry delay, a private runtime dir."""
    config = folder / "dockd.toml"
    config.write_text(
        "[ingest]\nmin_free_bytes = 0\nchange_retry_delay = 0\n"
        f'[daemon]\nruntime_dir = "{folder / "run"}"\n',
        encoding="utf-8",
    )
    return config


@dataclass
class CliEnv:
    config: Path
    state: Path

    def run(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        # SUDO_USER unset unless a test sets it: local_actor() reads it.
        return CliRunner().invoke(
            cli,
            ["--config", str(self.config), "--state-dir", str(self.state), *args],
            env={"SUDO_USER": None, "DOCKD_STATE_DIR": None, **(env or {})},
        )

    def ok(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        result = self.run(*args, env=env)
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result

    def json(self, *args: str, env: dict[str, str | None] | None = None) -> Any:
        """The output of a command that prints JSON (the caller gives --json), parsed."""
        return json.loads(self.ok(*args, env=env).stdout)

    def service(self) -> Service:
        """A read-only Service on the state directory, on the real clock."""
        return Service(load_config(self.config, self.state), SystemClock(), write=False)

    def log_entry(self, seq: int) -> dict[str, Any]:
        with self.service() as service:
            raw = service.log_entry(seq)
        assert raw is not None
        entry: dict[str, Any] = json.loads(raw)
        return entry
