"""What every client command shares: the common options, the session, the error handling.

A command is a function ``(session, args) -> int | None``; `command()` registers it with
its help and an example, and `run()` turns each failure into one line on stderr (the
server's problem detail when it answered), a JSON error object on stdout with --json,
and the exit code of exitcodes.py.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import sys
import textwrap
from typing import Callable
from urllib.parse import quote

from ..config import resolve
from ..errors import ClientError, Interrupted
from ..exitcodes import Exit, help_text
from ..http import DEFAULT_TIMEOUT_S, Api
from ..output import Output


def seg(value) -> str:
    """A model name (or any value) as one URL path segment: spaces and slashes escaped."""
    return quote(str(value), safe="")


def shell(*words) -> str:
    """A command to copy into a shell: `odconnect runs show 'my model' 3`."""
    return " ".join(shlex.quote(str(w)) for w in words)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not more than 0")
    return value


class Session:
    """The output of one command, and its API client made on first use (login makes its own)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Output(json_mode=args.json, quiet=args.quiet)
        self._api: Api | None = None

    @property
    def api(self) -> Api:
        if self._api is None:
            target = resolve(self.args.url, self.args.key)
            self._api = Api(target.url, target.key, self.args.timeout)
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    # lookups several commands need
    def training_dataset(self, model: str, dataset: int | None) -> int:
        """The dataset to add images to: the one asked for, else the model's first training one."""
        if dataset is not None:
            return dataset
        datasets = [d for d in self.api.get(f"/models/{seg(model)}/datasets") if d["kind"] == "training"]
        if not datasets:
            raise ClientError(f"model {model!r} has no training dataset; pass --dataset")
        return min(d["id"] for d in datasets)

    def version_numbers(self, model: str) -> dict[int, int]:
        """Version id -> number (the API's pointers are ids, people read numbers)."""
        return {v["id"]: v["number"] for v in self.api.get(f"/models/{seg(model)}/versions",
                                                         params={"includeArchived": "true"})}


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("server and output")
    group.add_argument("--url", help="server URL (default: $ODCONNECT_URL, the login file, http://127.0.0.1:8080)")
    group.add_argument("--key", help="API key (default: $ODCONNECT_KEY or the login file); "
                                     "visible to other users in the process list, prefer those")
    group.add_argument("--json", action="store_true", help="machine-readable JSON on stdout; progress stays on stderr")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes on stderr")
    group.add_argument("--timeout", type=positive_float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                       help="how long to wait for an answer (default: %(default)s)")
    return common


COMMON = common_options()

Handler = Callable[[Session, argparse.Namespace], "int | None"]


def command(sub, name: str, handler: Handler | None, summary: str, example: str,
            description: str | None = None) -> argparse.ArgumentParser:
    """A client subcommand with the common options, its example and the exit codes in --help.
    A group (models, versions, runs) passes handler=None and adds its own subcommands."""
    epilog = "example:\n" + textwrap.indent(textwrap.dedent(example).strip(), "  ")
    if handler is not None:
        epilog += "\n\n" + help_text()
    parser = sub.add_parser(name, help=summary, description=textwrap.fill(description or summary, 90), epilog=epilog,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            parents=[COMMON] if handler is not None else [])
    if handler is not None:
        parser.set_defaults(func=lambda args: run(handler, args))
    return parser


def run(handler: Handler, args: argparse.Namespace) -> int:
    # the serve command logs at INFO; the client's requests are not news
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    session = Session(args)
    try:
        code = handler(session, args)
        return int(Exit.OK if code is None else code)
    except BrokenPipeError:
        # the reader went away (`odconnect detect ... --json | head -1`): stop quietly
        _drop_stdout()
        return int(Exit.ERROR)
    except ClientError as exc:
        return fail(session.out, exc)
    except KeyboardInterrupt:
        return fail(session.out, Interrupted("interrupted"))
    finally:
        session.close()


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not fail on a closed pipe."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def fail(out: Output, exc: ClientError) -> int:
    out.error(exc.message)
    if out.json:
        try:
            out.json_line({"error": exc.as_json(), "exitCode": int(exc.code)})
        except BrokenPipeError:
            _drop_stdout()
    return int(exc.code)
