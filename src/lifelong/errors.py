"""Errors a user can act on: each names what is wrong and how to fix it.

The CLI prints `str(error)` as one line and exits non-zero; nothing stored is touched
when one is raised, because every check runs before the first write.
"""

from __future__ import annotations


class LifelongError(Exception):
    """Base class: the message is shown to the user as it is."""

    exit_code = 1


class InputError(LifelongError):
    """Bad input from the user (a file, a question, an option)."""

    exit_code = 2


class ModelNotFoundError(LifelongError):
    """A model name or path that cannot be loaded here."""

    exit_code = 3


class MindError(LifelongError):
    """A mind directory that cannot be opened safely (missing, newer schema, corrupted)."""

    exit_code = 4


class NotFoundError(LifelongError):
    """A memory id (or other record) that does not exist."""

    exit_code = 5


class BusyError(LifelongError):
    """Another process is changing the same mind's versions (a sleep, merge or rollback)."""

    exit_code = 6


class GateRefusedError(LifelongError):
    """A version the gate refused was asked to become active without --force."""

    exit_code = 10  # the code `sleep` exits with when the gate refuses its candidate


class Interrupted(LifelongError):
    """Ctrl-C: the message says what was, and was not, written."""

    exit_code = 130  # the shell's code for a process ended by SIGINT
