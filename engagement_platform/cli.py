"""The `engagement-platform` command.

Bad arguments and expected failures end with one line on stderr and exit code 2 (usage)
or 1 (a service or the data said no); tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from engagement_platform import settings as settings_module
from engagement_platform.settings import Settings, SettingsError

PROG = "engagement-platform"


class UsageError(Exception):
    """A command was called with arguments it cannot use."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _stack_supervisor(settings: Settings):  # type: ignore[no-untyped-def]
    from engagement_platform.local_stack.supervisor import Supervisor

    return Supervisor(settings)


def cmd_stack_up(args: argparse.Namespace, settings: Settings) -> int:
    _stack_supervisor(settings).up(args.services or None)
    return 0


def cmd_stack_down(args: argparse.Namespace, settings: Settings) -> int:
    _stack_supervisor(settings).down(args.services or None)
    return 0


def cmd_stack_restart(args: argparse.Namespace, settings: Settings) -> int:
    _stack_supervisor(settings).restart(args.service)
    return 0


def cmd_stack_status(args: argparse.Namespace, settings: Settings) -> int:
    statuses = _stack_supervisor(settings).status()
    if args.json:
        print(json.dumps({"services": [s.as_json() for s in statuses]}))
    else:
        for s in statuses:
            state = "healthy" if s.healthy else "UNHEALTHY" if s.pid else "CRASHED" if s.crashed else "down"
            pid = str(s.pid) if s.pid else "-"
            print(f"{s.name:<11} {state:<10} pid {pid:<8} {s.endpoint}")
    return 0 if all(s.healthy for s in statuses) else 1


def cmd_stack_logs(args: argparse.Namespace, settings: Settings) -> int:
    supervisor = _stack_supervisor(settings)
    supervisor.service(args.service)  # validates the name
    path = supervisor.log_file(args.service)
    if not path.exists():
        raise UsageError(f"no log for {args.service} yet at {path}")
    print(supervisor.tail(args.service, args.lines))
    if args.follow:
        with open(path, errors="replace") as fh:
            fh.seek(0, 2)
            try:
                while True:
                    line = fh.readline()
                    if line:
                        sys.stdout.write(line)
                        sys.stdout.flush()
                    else:
                        time.sleep(0.3)
            except KeyboardInterrupt:
                return 0
    return 0


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from engagement_platform.runner import run_up

    return run_up(settings)


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    from engagement_platform.runner import run_down

    return run_down(settings)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Streaming analytics for content engagement. Endpoints and credentials "
        "come from environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("up", help="run the whole platform on the local stack (Ctrl-C stops)")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop everything `up` or `stack up` started")
    down.set_defaults(func=cmd_down)

    stack = sub.add_parser("stack", help="the local embedded services (no Docker)")
    stack_sub = stack.add_subparsers(dest="stack_command", required=True, parser_class=_Parser)
    s_up = stack_sub.add_parser("up", help="start services that are not running; wait until healthy")
    s_up.add_argument("services", nargs="*", metavar="SERVICE", help="default: all five")
    s_up.set_defaults(func=cmd_stack_up)
    s_down = stack_sub.add_parser("down", help="stop the services this stack started")
    s_down.add_argument("services", nargs="*", metavar="SERVICE", help="default: all five")
    s_down.set_defaults(func=cmd_stack_down)
    s_restart = stack_sub.add_parser("restart", help="stop and start one service")
    s_restart.add_argument("service", metavar="SERVICE")
    s_restart.set_defaults(func=cmd_stack_restart)
    s_status = stack_sub.add_parser("status", help="health, pid and endpoint of each service")
    s_status.add_argument("--json", action="store_true", help="machine-readable output")
    s_status.set_defaults(func=cmd_stack_status)
    s_logs = stack_sub.add_parser("logs", help="print a service's log")
    s_logs.add_argument("service", metavar="SERVICE")
    s_logs.add_argument("-n", "--lines", type=int, default=50, help="lines to show (default 50)")
    s_logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    s_logs.set_defaults(func=cmd_stack_logs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_module.load()
        return int(args.func(args, settings))
    except (UsageError, SettingsError, LookupError) as exc:
        print(f"{PROG}: error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except RuntimeError as exc:  # StackError and friends: a service said no
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
