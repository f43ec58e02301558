"""An ``argparse`` parser whose errors are one line (no usage dump) and exit with status 2."""

from __future__ import annotations

import argparse
import sys


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D401 - argparse API
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def size_or_inf(text: str) -> float:
    if str(text).lower() in ("inf", "all"):
        return float("inf")
    return float(positive_int(text))


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show each option's default once: not for on/off flags (their 'default' is the flag's opposite,
    also for a flag with an optional value such as ``--continue_train [auto]``), not where the help
    already names it, and not when there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.nargs == 0
            or action.default is None
            or isinstance(action.default, bool)
            or "default" in text
        ):
            return text
        return super()._get_help_string(action)


def gpu_ids_text(text: str) -> str:
    """``--gpu_ids`` checked as it is parsed ('auto', -1 or indices), kept as text."""
    from util.device import parse_gpu_ids
    from util.errors import UserError

    try:
        parse_gpu_ids(text)
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--gpu_ids ")) from None
    return text


def add_gpu_ids_option(parser: argparse.ArgumentParser) -> None:
    """``--gpu_ids`` of the scripts that start runs (checked as it is parsed, default 'auto')."""
    parser.add_argument(
        "--gpu_ids",
        type=gpu_ids_text,
        default="auto",
        help="'auto' (first GPU if any), -1 (CPU) or a GPU index",
    )


def given_options(parser: argparse.ArgumentParser, argv: list[str] | None, keys) -> set[str]:
    """The options among ``keys`` that ``argv`` sets, told apart from defaults by parsing it again
    with a marker as every default (argparse applies neither types nor choices to a non-string default)."""
    marker = object()
    keys = list(keys)
    saved = {key: parser.get_default(key) for key in keys}
    parser.set_defaults(**dict.fromkeys(keys, marker))
    try:
        parsed, _ = parser.parse_known_args(argv)
    finally:
        parser.set_defaults(**saved)
    return {key for key in keys if getattr(parsed, key, marker) is not marker}
