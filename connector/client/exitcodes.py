"""What each exit status of the client commands means, in one table.

Scripts branch on these, so they never change meaning. `--help` and the README
print this table; `errors.py` maps each failure to its code.
"""
from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    ERROR = 1            # on this machine: a file to read or write, local input, nothing to do
    USAGE = 2            # bad arguments (argparse's code, the same for every odconnect command)
    AUTH = 3             # no API key, or the server refused it (401/403)
    UNREACHABLE = 4      # no answer: connection refused, unknown host, timeout
    TRAINING_FAILED = 5  # the training run failed or was canceled
    REFUSED = 6          # the server refused the request (another 4xx); its problem detail is printed
    SERVER_ERROR = 7     # the server failed (5xx)
    DATA_NOT_READY = 8   # data-check: training cannot start yet
    PARTIAL = 9          # detect: some files got an error row instead of a result
    INTERRUPTED = 130    # Ctrl+C


MEANING = {
    Exit.OK: "done",
    Exit.ERROR: "local problem (a file, the input, nothing to do)",
    Exit.USAGE: "bad arguments",
    Exit.AUTH: "no API key, or the server refused it",
    Exit.UNREACHABLE: "server not reachable or no answer in time",
    Exit.TRAINING_FAILED: "training failed or was canceled",
    Exit.REFUSED: "server refused the request (4xx): its detail is printed",
    Exit.SERVER_ERROR: "server error (5xx)",
    Exit.DATA_NOT_READY: "data-check: training cannot start yet",
    Exit.PARTIAL: "detect: some files failed (their rows say why)",
    Exit.INTERRUPTED: "interrupted (Ctrl+C)",
}


def help_text() -> str:
    return "exit codes:\n" + "\n".join(f"  {int(code):<4}{text}" for code, text in MEANING.items())
