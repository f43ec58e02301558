"""The one exception type for mistakes a user can fix (bad option, bad data, bad checkpoint).

Entry points (``train.py``, ``test.py``, scripts) catch it and print ``error: <message>`` on one
line with exit status 2, without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable

# A full disk or a folder one may not write: the user's to fix, reported in one line too.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class UserError(Exception):
    """A problem with the user's input, described in one line that says what to do."""


def run_cli(main: Callable[[], int]) -> int:
    """Run ``main`` and turn a :class:`UserError` into a one-line message and exit status 2."""
    try:
        return main()
    except UserError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in _ENVIRONMENT_ERRNOS:
            raise
        where = f": {err.filename}" if err.filename else ""
        print(
            f"error: {err.strerror or err}{where} (free some space or fix the permissions, or choose "
            "another --checkpoints_dir/--results_dir)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def one_line(err: UserError) -> str:
    """The message of ``err``, also when a DataLoader worker raised it.

    torch re-raises a worker's exception with the worker's traceback in its message
    ("Caught UserError in DataLoader worker process 0. Original Traceback ..."); the user's
    message is the traceback's last line, after the exception's name.
    """
    text = str(err)
    if "Original Traceback" not in text:
        return text
    last = text.rstrip().splitlines()[-1]
    name = f"{UserError.__module__}.{UserError.__qualname__}: "
    return last[len(name) :] if last.startswith(name) else last
