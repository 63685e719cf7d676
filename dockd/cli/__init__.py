"""The `dockd` command line: one module per command group, parsing and printing only.

`dockd.cli:main` is the console entry point (pyproject.toml) and what
`python -m dockd` runs; `cli` is the root click group (main.py).
"""

from dockd.cli.main import cli, main

__all__ = ["cli", "main"]
