"""Where the team's shared data files are: one place for every benchmark and test to find them.

The SPDX licence texts (``spdx-licenses.jsonl``, described in ``shared/data/README.md``) are not part of
the package. They are found through the ``DOMAINLM_SPDX`` environment variable, else in
``../shared/data/`` beside the repository root (where a checkout of the team's steering repository
puts them). Nothing else is guessed: a missing file is an error that names both places.
"""

from __future__ import annotations

import os
from pathlib import Path

from domainlm.errors import UserError

SPDX_ENV = "DOMAINLM_SPDX"
# src/domainlm/datafiles.py -> the repository root is two folders above the package
REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def spdx_path() -> Path:
    """The SPDX licences JSONL file: ``$DOMAINLM_SPDX``, else ``../shared/data/spdx-licenses.jsonl``."""
    env = os.environ.get(SPDX_ENV)
    if env:
        if not Path(env).is_file():
            raise UserError(f"{SPDX_ENV}={env} is not a file", f"Point {SPDX_ENV} at spdx-licenses.jsonl")
        return Path(env)
    default = SHARED_DATA / "spdx-licenses.jsonl"
    if not default.is_file():
        raise UserError(
            f"the SPDX licences file was not found: {SPDX_ENV} is unset and "
            f"../shared/data/spdx-licenses.jsonl (beside the repository, {default}) is missing",
            f"Set {SPDX_ENV} to the file (shared/data/README.md says how to regenerate it)",
        )
    return default
