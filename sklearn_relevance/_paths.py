"""What is wrong with a path given for a file to read, in words."""

from __future__ import annotations

import stat
from pathlib import Path

__all__ = ["file_problem"]


def file_problem(path):
    """Why ``path`` cannot be read as a regular file (a phrase), or None.

    A folder, a FIFO, a socket or a device is not "missing": the phrase says
    what the path is, so that the user does not look for a typo.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "does not exist"
    except NotADirectoryError:
        return "does not exist (a part of the path is a file, not a folder)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    return "is not a regular file"
