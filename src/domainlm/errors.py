"""User-facing errors: one line that names the problem and the fix.

The CLI turns a :class:`UserError` into that line and exit code 2 (traceback only with ``--debug``).
Library code raises it for anything the user can correct: a bad path, an unknown name, a bad config key.
"""

from __future__ import annotations

from collections.abc import Iterable


class UserError(Exception):
    """An error the user can fix. ``str(err)`` is the problem; ``err.fix`` says what to do."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}. {self.fix}".strip() if self.fix else self.problem


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UserError:
    """The error for a string option that is not one of ``valid`` (presets, objectives, kinds...)."""
    names = ", ".join(sorted(valid))
    return UserError(f"unknown {kind} '{name}'", f"Use one of: {names}")


def resolve(kind: str, name: str, table: dict):
    """Look ``name`` up in a module-level name→thing map, or raise an error listing the valid names."""
    try:
        return table[name]
    except KeyError:
        raise unknown_name(kind, name, table) from None
