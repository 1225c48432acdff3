"""The root exception of the Chaos Toolkit extension.

Chaos Toolkit records any exception an activity raises as that activity's failure; these name
what went wrong in the project's terms (a bad argument, a load run that could not finish).
"""

from __future__ import annotations


class CtkError(Exception):
    """Root of the extension's errors."""


class InvalidArgument(CtkError, ValueError):
    """A probe or action argument is out of range; the message names it and what is allowed."""


class LoadFailed(CtkError):
    """The load generator could not run or did not report (its stderr tail is in the message)."""


class ServiceFailed(CtkError):
    """A service process could not be found, started or reached."""
