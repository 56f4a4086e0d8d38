"""One error root for the library; the CLI maps each family to a documented exit code.

The library raises these and never prints. ``diagnostics()`` is the one line a user sees: what is
wrong and how to fix it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every ``evidence`` command (documented in the README)."""

    OK = 0
    #: The check said no: a package failed verification, or a gate (--fail-on/--strict) tripped
    #: after the package was written.
    FAILED = 1
    #: The command line or configuration is wrong; nothing was done.
    USAGE = 2
    #: The command could not run: an unreadable file, a broken recording, an internal error.
    CANNOT_RUN = 3


class EvidenceError(Exception):
    """Root of every error the library raises on purpose."""

    exit_code: ExitCode = ExitCode.CANNOT_RUN

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """One line for a person: what is wrong, then what to do about it."""
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(EvidenceError):
    """Bad command line input: wrong flag values, a bad window, a missing file argument."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """The configuration file (or a flag standing in for one of its keys) is invalid."""


class ReplayError(EvidenceError):
    """A recording could not answer a request, or could not be read.

    Deliberately *not* an ``azure.core.exceptions.AzureError``: azure-core's retry policy must not
    retry a request that no recording can ever answer.
    """


class PackageError(EvidenceError):
    """A package could not be built (I/O failure, bad key); no partial package is left behind."""


class VerificationError(EvidenceError):
    """A package is corrupt, tampered with, or not trusted."""

    exit_code = ExitCode.FAILED
