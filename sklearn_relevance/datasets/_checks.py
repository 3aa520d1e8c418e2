"""Path checks shared by the dataset loaders."""

from __future__ import annotations

from pathlib import Path





# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------
def _check_path(path, name, owner, *, is_dir=False):
    path = Path(path)
    if not (path.is_dir() if is_dir else path.is_file()):
        kind = "directory" if is_dir else "file"
        raise FileNotFoundError(
            f"The '{name}' parameter of {owner} must be an existing {kind}. "
            f"Got {str(path)!r} instead."
        )
    return path

