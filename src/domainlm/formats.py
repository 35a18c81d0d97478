"""format_version: every file domainlm writes for itself to read back says which format it is in.

Writers put ``"format_version": N`` in the file (a run's ``config.yaml``, ``train_summary.json``, a
checkpoint's ``state.json``, the encode cache's shard metadata, ``domainlm_export.json``...). Readers
call :func:`check_format` before using anything else in it, so a folder from an older or a newer
domainlm is one clear :class:`~domainlm.errors.UserError` naming the file, both versions and the fix,
instead of a KeyError deep inside a loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domainlm.errors import UserError


def check_format(
    data: Any, path: str | Path, reads: int | tuple[int, ...], what: str = "file", remake: str = ""
) -> int:
    """The ``format_version`` of ``data`` (a parsed JSON/YAML mapping read from ``path``), checked.

    ``reads``: the version(s) this domainlm reads. ``what`` names the thing for the message ("run
    folder", "checkpoint"); ``remake`` is the command that writes it afresh, for the fix. Raises a
    UserError when the field is missing or not a whole number, or when the version is not one of
    ``reads`` (from a newer domainlm: upgrade; from an older one: re-create it).
    """
    from domainlm import __version__

    versions = (reads,) if isinstance(reads, int) else tuple(reads)
    readable = ", ".join(map(str, versions))
    again = f"re-create it with `{remake}`" if remake else "re-create it with this version of domainlm"
    if not isinstance(data, dict) or "format_version" not in data:
        raise UserError(
            f"{what} '{path}' has no format_version: it was not written by domainlm, or it is damaged",
            f"Check the path, or {again}",
        )
    found = data["format_version"]
    if isinstance(found, bool) or not isinstance(found, int):
        raise UserError(
            f"{what} '{path}' has format_version {found!r}, which is not a whole number (damaged?)",
            f"Restore the file, or {again}",
        )
    if found not in versions:
        newer = found > max(versions)
        raise UserError(
            f"{what} '{path}' was written by format {found}; this domainlm ({__version__}) reads format "
            f"{readable}",
            (
                f"Upgrade domainlm (pip install -U domainlm) to read it, or {again}"
                if newer
                else f"It comes from an older domainlm: {again}"
            ),
        )
    return found
