"""The one exception type for mistakes a user can fix (bad option, bad data, bad checkpoint).

Entry points (``train.py``, ``test.py``, scripts) catch it and print ``error: <message>`` on one
line with exit status 2, without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem with the user's input, described in one line that says what to do."""


def run_cli(main: Callable[[], int]) -> int:
    """Run ``main`` and turn a :class:`UserError` into a one-line message and exit status 2."""
    try:
        return main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
