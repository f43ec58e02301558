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


class ReportedError(UserError):
    """A :class:`UserError` whose line is already printed (by a torchrun rank, before it left its
    process group: the first rank to exit gets the others stopped, so each says why first)."""


def run_cli(main: Callable[[], int]) -> int:
    """Run ``main`` and turn a :class:`UserError` into a one-line message and exit status 2."""
    try:
        return main()
    except ReportedError:
        return 2
    except UserError as err:
        print_error(one_line(err))
        return 2
    except OSError as err:
        if err.errno not in _ENVIRONMENT_ERRNOS:
            raise
        where = f": {err.filename}" if err.filename else ""
        print_error(
            f"{err.strerror or err}{where} (free some space or fix the permissions, or choose "
            "another --checkpoints_dir/--results_dir)"
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def print_error(message: str) -> None:
    """``error: <message>`` on stderr in one write, so that the lines of processes sharing a
    terminal or pipe (torchrun's ranks) never interleave mid-line."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


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
