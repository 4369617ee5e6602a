"""`sipsync-peer invite` as a thin client of the running daemon: the plain forms of the command
are read here, sent over the control socket and answered, with none of click, asyncio or ssl
loaded (they cost more than a no-op session). Anything else (help, a usage error, a progress
bar for a terminal) goes to the click commands of `peer.cli`, which give the same results."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Mapping, Sequence

from session_xml.vocabulary import Direction, SyncMode, SyncProtocol

# The daemon's control socket and the command's data folder, defined here for peer.control and
# peer.cli to share; the exit code is peer.sync_outcome's (a test keeps them equal), whose
# module pulls in the session types.
SOCKET_NAME = "control.sock"
EXIT_UNREACHABLE = 4
DATA_DIR_VARIABLE = "SIPSYNC_PEER_DATA_DIR"
DEFAULT_DATA_DIR = "sipsync-peer-data"
LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR"})

_CHOICES = {"--protocol": frozenset(SyncProtocol), "--direction": frozenset(Direction),
            "--mode": frozenset(SyncMode)}
_VALUED = frozenset({"--dataset", "--timeout", *_CHOICES})
_FLAGS = {"--json": "as_json", "--wait-online": "wait_online"}


class PlainInvite:
    """An `invite` command line this module can run as it is: where to ask, and what."""

    def __init__(self, data_dir: str, command: dict, as_json: bool) -> None:
        self.data_dir, self.command, self.as_json = data_dir, command, as_json


def read_plain_invite(argv: Sequence[str], environ: Mapping[str, str]) -> PlainInvite | None:
    """The command when `argv` is a well-formed `invite` whose outcome needs no terminal; None
    for anything else, which the click commands then read (and refuse, where it is wrong)."""
    data_dir = environ.get(DATA_DIR_VARIABLE, DEFAULT_DATA_DIR)
    args = list(argv)
    global_options: set[str] = set()
    while args and args[0].startswith("-"):
        name, value, args = _option(args, frozenset({"--data-dir", "--log-level"}))
        if name is None or name in global_options:
            return None
        global_options.add(name)
        if name == "--data-dir":
            data_dir = value
        elif value.upper() not in LOG_LEVELS:
            return None
    if not data_dir or os.path.isfile(data_dir) or not args or args[0] != "invite":
        return None
    args = args[1:]
    values: dict[str, str] = {}
    flags = {"as_json": False, "wait_online": False}
    targets = []
    while args:
        if not args[0].startswith("-"):
            targets.append(args.pop(0))
            continue
        if args[0] in _FLAGS:
            flags[_FLAGS[args.pop(0)]] = True
            continue
        name, value, args = _option(args, _VALUED)
        if name is None or name in values:
            return None
        values[name] = value
    if len(targets) != 1 or "--dataset" not in values:
        return None
    if any(name in values and values[name] not in allowed for name, allowed in _CHOICES.items()):
        return None
    timeout = None
    if "--timeout" in values:
        timeout = _seconds(values["--timeout"])
        if timeout is None:
            return None
    if not flags["as_json"] and _stderr_may_be_a_terminal(environ):
        return None  # the click command draws a progress bar there
    command = {"command": "invite", "target": targets[0], "dataset": values["--dataset"],
               "protocol": values.get("--protocol"),
               "direction": values.get("--direction", Direction.PUSH.value),
               "mode": values.get("--mode"), "wait_online": flags["wait_online"],
               "timeout": timeout}
    return PlainInvite(data_dir, command, flags["as_json"])


def _option(args: list[str], names: frozenset[str]) -> tuple[str | None, str, list[str]]:
    """The option at the head of `args` (`--name value` or `--name=value`), its value and what
    follows; None for a name not in `names` or a value that looks like another option."""
    name, equals, value = args[0].partition("=")
    if name not in names:
        return None, "", args
    if equals:
        return name, value, args[1:]
    if len(args) < 2 or args[1].startswith("-"):
        return None, "", args
    return name, args[1], args[2:]


def _seconds(text: str) -> float | None:
    """A plain non-negative number of seconds, or None (click's reading decides the rest)."""
    if not text.replace(".", "", 1).isdigit() or not text.isascii():
        return None
    return float(text)


def _stderr_may_be_a_terminal(environ: Mapping[str, str]) -> bool:
    # The variables a progress bar honours to draw where no terminal is.
    if "TTY_COMPATIBLE" in environ or "FORCE_COLOR" in environ:
        return True
    try:
        return os.isatty(2)
    except OSError:
        return False


def ask_daemon(data_dir: str, command: dict) -> dict | None:
    """The daemon's result (or error) message for `command`, over its control socket; None
    when no daemon listens there (nothing was sent)."""
    path = os.path.join(data_dir, SOCKET_NAME)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        try:
            connection.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        connection.sendall(json.dumps(command).encode() + b"\n")
        with connection.makefile("rb") as answers:
            for line in answers:
                message = json.loads(line)
                if message.get("event") in ("result", "error"):
                    return message
    return {"ok": False, "exit_code": EXIT_UNREACHABLE, "reason": "the daemon closed the connection"}


def print_outcome(result: dict, as_json: bool) -> int:
    """Print the outcome as `invite` does; its exit code."""
    if as_json:
        print(json.dumps({k: v for k, v in result.items() if k != "event"}), flush=True)
    else:
        text = result.get("line") or result.get("reason")
        print("" if text is None else text, flush=True)
    return int(result.get("exit_code", EXIT_UNREACHABLE))


def run_plain_invite(argv: Sequence[str]) -> None:
    """Run `argv` here and exit, if it is a plain invite that reached the daemon; otherwise
    return (the click command then says, in its own words, that no daemon runs)."""
    plain = read_plain_invite(argv, os.environ)
    if plain is None:
        return
    result = ask_daemon(plain.data_dir, plain.command)
    if result is not None:
        sys.exit(print_outcome(result, plain.as_json))


def main() -> None:
    """The `sipsync-peer` command."""
    run_plain_invite(sys.argv[1:])
    from peer.cli import main as commands

    commands()
