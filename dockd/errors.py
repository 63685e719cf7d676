"""The one error hierarchy callers see.

Every failure that a user or an operator can cause (bad config, bad input,
a tampered store) surfaces as a `DockdError` subclass with a message that
says what is wrong and where; never as a bare ValueError or OSError.
"""

from __future__ import annotations


class DockdError(Exception):
    """Base of every error dockd raises on purpose."""

    exit_code = 1


class ConfigError(DockdError):
    """The configuration file or a command-line option is invalid."""

    exit_code = 2


class UsageError(DockdError):
    """A request names something that does not exist, or asks for something not allowed.

    `field` names the request's argument at fault (e.g. "reason"), in the
    service's words; a front adds its own spelling of it (the CLI: --reason).
    """

    exit_code = 2

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotPermitted(DockdError):
    """The caller's roles do not allow the request (dockd/access/roles.py); nothing changed."""

    exit_code = 5


class CatalogError(DockdError):
    """The catalog cannot be opened, migrated or written."""


class StoreError(DockdError):
    """The evidence store refused or failed an operation."""


class StoreFullError(StoreError):
    """The store's filesystem has no room for a file."""


class SourceError(DockdError):
    """The camera volume (or one file on it) failed or vanished."""


class VolumeGoneError(SourceError):
    """The whole volume disappeared: nothing more can be read from it."""


class StopRequested(DockdError):
    """The session was asked to stop (daemon stopping, camera removed) mid-file.

    The partial copy is discarded and the file stays on the camera.
    """


class VerifyError(DockdError):
    """A record read back does not parse as the format says."""


class UnknownOperation(DockdError):
    """A request names no entry of the request table (runner/operations.py)."""


class Stopping(DockdError):
    """The daemon is stopping and takes no new long request: ask again after its restart."""
