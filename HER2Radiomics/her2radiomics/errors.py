"""User-facing errors: one clear line that says what is wrong and what to do."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (file, option, table, model card).

    The message must be one line naming what is wrong and how to fix it. The CLI prints it as
    ``error: <message>`` and exits with code 2, without a traceback.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        message = " ".join(str(message).split())  # always one line
        super().__init__(message)
