"""What every command line of the project does with a user's mistake: one line, a non-zero exit.

A bad flag value, a checkpoint or data folder that is missing or unreadable, a folder where a
file was meant: `prog: error: <what and where>` on stderr, exit status 2, no traceback. A
traceback is kept for bugs, which are any other exception.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from model.network.checkpoint_info import CheckpointError

T = TypeVar("T")


def user_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean "the user asked for something that is not there or not readable".
    (Imported here, not above: app.serve uses this module in the CPU image, without torch.)"""
    from model.data.fashion_mnist import DataNotFoundError
    from model.data.photos import PhotosNotFoundError

    return (
        CheckpointError,
        DataNotFoundError,
        PhotosNotFoundError,
        FileNotFoundError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
    )


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help with each flag's default, but for on/off switches, whose help says it all."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.nargs == 0 else super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `prog: error: message (see --help)`, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def fail(prog: str, message: object) -> NoReturn:
    """End the command with one line on stderr and exit status 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def run(prog: str, main: Callable[[], T]) -> T:
    """main(), with a user's mistake (user_errors()) ended in one line, not a traceback."""
    mistakes = user_errors()
    try:
        return main()
    except mistakes as exc:
        fail(prog, exc)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
