"""The `engagement-platform` command.

Bad arguments and expected failures end with one line on stderr and exit code 2 (usage)
or 1 (a service or the data said no); tracebacks are for bugs only. A command that needs
services (``needs``) checks they answer first: one line names the one that does not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, NoReturn

from engagement_platform import settings as settings_module
from engagement_platform.argtypes import UsageError, non_negative_float, positive_float, positive_int
from engagement_platform.replay import add_arguments as replay_arguments
from engagement_platform.settings import Settings, SettingsError, masked

if TYPE_CHECKING:  # loaded only by the subcommands that use them
    from engagement_platform.local_stack.supervisor import Supervisor
    from engagement_platform.migrations.files import Migration
    from engagement_platform.reachability import Service

PROG = "engagement-platform"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _stack_supervisor(settings: Settings) -> Supervisor:
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
            print(f"{s.name:<11} {state:<10} pid {pid:<8} {masked(s.endpoint)}")  # --json: whole
    return 0 if all(s.healthy for s in statuses) else 1


def cmd_stack_logs(args: argparse.Namespace, settings: Settings) -> int:
    from engagement_platform.local_stack.apps import app_services
    from engagement_platform.local_stack.supervisor import Supervisor, stack_services

    # the platform's own processes (enrich, dagster, ...) keep their logs the same way
    supervisor = Supervisor(settings, stack_services(settings) + app_services(settings))
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
    from engagement_platform.local_stack.apps import OPTIONAL, AppPlan
    from engagement_platform.local_stack.up import run_up

    skip = tuple(s for s in (args.skip or "").split(",") if s)
    unknown = sorted(set(skip) - set(OPTIONAL))
    if unknown:
        raise UsageError(f"--skip takes {', '.join(OPTIONAL)}; not {', '.join(unknown)}")
    instances = args.instances if args.instances is not None else settings.instances
    return run_up(settings, AppPlan(instances=instances, simulator_rate=args.rate, skip=skip))


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    from engagement_platform.local_stack.up import run_down

    return run_down(settings)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from engagement_platform.source.simulator import parse_event_types, run

    try:
        event_types = parse_event_types(args.event_types)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.events is not None and args.rate is not None:
        raise UsageError("--events and --rate exclude each other (bulk mode or rate mode)")
    if args.backfill_days is not None and args.rate is not None:
        raise UsageError("--backfill-days writes --events historical events; --rate does not apply")
    if args.duration is not None and (args.events is not None or args.backfill_days is not None):
        raise UsageError("--duration applies to rate mode only")
    from engagement_platform.reachability import require

    require(settings, ["postgres"])  # after the flags: a bad one is a usage error, stack or not
    run(
        settings.postgres_dsn_for("writer"),
        content=args.content,
        events=args.events,
        rate=args.rate if args.rate is not None else 20.0,
        burst=args.burst,
        duration=args.duration,
        backfill_days=args.backfill_days,
        seed=args.seed,
        users=args.users,
        event_types=event_types,
    )
    return 0


def cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    from engagement_platform.warehouse.sql import run

    return run(args, settings)


def _migration_errors() -> AbstractContextManager[None]:
    """A database that cannot be reached or says no, as one line (exit 1), never a traceback."""
    import contextlib

    import psycopg2
    from clickhouse_connect.driver.exceptions import Error as ClickHouseError

    from engagement_platform.warehouse.sql import clickhouse_message

    @contextlib.contextmanager
    def translate() -> Iterator[None]:
        try:
            yield
        except psycopg2.Error as exc:
            raise RuntimeError(f"postgres: {str(exc).strip().splitlines()[0]}") from None
        except ClickHouseError as exc:
            raise RuntimeError(f"clickhouse: {clickhouse_message(exc)}") from None

    return translate()


def cmd_migrate_status(args: argparse.Namespace, settings: Settings) -> int:
    from engagement_platform.migrations import run

    with _migration_errors():
        statuses = run.status(settings)
    if args.json:
        print(
            json.dumps(
                {"databases": [s.as_json() for s in statuses], "clean": all(s.clean for s in statuses)}
            )
        )
    else:
        for s in statuses:
            latest = f"at version {s.applied[-1].version:03d}" if s.applied else "nothing applied"
            print(
                f"{s.database}: {latest}; {len(s.applied)} applied, "
                f"{len(s.pending)} pending, {len(s.edited)} edited"
            )
            for a in s.applied:
                print(f"  applied  {a.version:03d} {a.name:<32} {a.applied_at:%Y-%m-%d %H:%M:%S}")
            for m in s.pending:
                print(f"  PENDING  {m.version:03d} {m.name:<32} {m.label}")
            for m in s.edited:
                print(f"  EDITED   {m.version:03d} {m.name:<32} {m.label} (changed after it was applied)")
            for a in s.missing:
                print(f"  missing  {a.version:03d} {a.name:<32} (recorded, no file in this mode)")
    return 0 if all(s.clean for s in statuses) else 1


def cmd_migrate_up(args: argparse.Namespace, settings: Settings) -> int:
    from engagement_platform.migrations import run

    def applied(database: str, migration: Migration) -> None:
        print(f"{database}: applied {migration.version:03d} {migration.label}", flush=True)

    with _migration_errors():
        done = run.up(
            settings, on_applied=applied, on_wait=lambda line: print(line, file=sys.stderr, flush=True)
        )
    if not any(done.values()):
        print("nothing pending: both databases are at their latest version")
    return 0


def cmd_migrate_new(args: argparse.Namespace, settings: Settings) -> int:
    from engagement_platform.migrations import files

    try:
        print(files.Layout.of(settings.migrations_dir).new(args.database, args.name))
    except files.MigrationNameError as exc:
        raise UsageError(str(exc)) from None
    return 0


def cmd_dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    from engagement_platform.reachability import require

    if args.warehouse and args.topic:  # flags first: a bad one is a usage error, stack or not
        raise UsageError("--topic names a Kafka DLQ; --warehouse replays ClickHouse's errors table")
    require(settings, ["clickhouse" if args.warehouse else "kafka"])
    if args.warehouse:
        from engagement_platform.warehouse import reparse

        return reparse.run(args, settings)
    from engagement_platform.streaming import dlq_replay

    return dlq_replay.run(args, settings)


# `consume X` and `bench X`: each module offers add_arguments(parser) and run(args, settings) -> int.
# Only the module a command line names is imported (they pull in Kafka, ClickHouse and Redis
# clients): `--help` and every other command stay fast.
CONSUMERS = {
    "enrich": (
        "engagement_platform.streaming.enrich_runner",
        "join events with content; write engagement_enriched",
    ),
    "leaderboard": (
        "engagement_platform.streaming.leaderboard_runner",
        "count enriched events into Redis minute buckets",
    ),
    "warehouse": (
        "engagement_platform.warehouse.bridge",
        "insert enriched events into ClickHouse (local mode's bridge)",
    ),
}
# The services each of them needs (checked before it starts: one line when one is down)
NEEDS: dict[str, tuple[Service, ...]] = {
    "consume enrich": ("kafka",),
    "consume leaderboard": ("kafka", "redis"),
    "consume warehouse": ("kafka", "clickhouse"),
    "bench enrich": ("kafka",),
    "bench leaderboard": ("kafka", "redis"),
    "bench warehouse": ("kafka", "clickhouse"),
    "bench e2e": ("postgres", "kafka", "cdc", "redis", "clickhouse"),
    "bench soak": ("postgres", "kafka", "cdc", "redis", "clickhouse"),
    "bench dashboard": (),  # only the dashboard, which says for itself when a service is down
}
BENCHMARKS = {
    "enrich": ("engagement_platform.bench.enrich", "enrichment: ours vs baseline vs the transport ceiling"),
    "leaderboard": ("engagement_platform.bench.leaderboard", "leaderboard: ours vs baseline vs ceiling"),
    "warehouse": ("engagement_platform.bench.warehouse", "warehouse: bridge ingest rate, dashboard queries"),
    "e2e": ("engagement_platform.bench.e2e", "the whole path, per event: commit to Kafka, Redis, ClickHouse"),
    "soak": ("engagement_platform.bench.soak", "memory over a long run: RSS per process, disk, Redis"),
    "dashboard": (
        "engagement_platform.bench.dashboard",
        "the dashboard in Chromium: when each section shows",
    ),
}


def _add_module_commands(
    sub: argparse._SubParsersAction[_Parser],
    modules: dict[str, tuple[str, str]],
    selected: str | None,
    command: str,
) -> None:
    import importlib

    for name, (module_name, help_text) in modules.items():
        if name != selected:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        summary = (module.__doc__ or "").strip().split("\n\n")[0]  # the first paragraph
        parser = sub.add_parser(name, help=help_text, description=summary)
        module.add_arguments(parser)
        # an always-on consumer waits for its services; a one-off command stops with one line
        parser.set_defaults(func=module.run, needs=NEEDS[f"{command} {name}"], waits=command == "consume")


def _named_after(argv: Sequence[str], command: str) -> str | None:
    """The word after ``command`` on the command line (which consumer or benchmark to load)."""
    words = [w for w in argv if not w.startswith("-")]
    return words[1] if len(words) > 1 and words[0] == command else None


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Streaming analytics for content engagement. Endpoints and credentials "
        "come from environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("up", help="run the whole platform on the local stack (Ctrl-C stops)")
    up.add_argument(
        "--instances",
        type=positive_int,
        help="processes per consumer, sharing the partitions of one group (default EP_INSTANCES, 1)",
    )
    up.add_argument(
        "--rate",
        type=non_negative_float,
        default=20.0,
        help="events/s the simulator writes into Postgres; 0 runs none (default 20)",
    )
    up.add_argument(
        "--skip", metavar="NAMES", help="do not start these: dagster, dashboard, simulator (commas)"
    )
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop everything `up` or `stack up` started")
    down.set_defaults(func=cmd_down)

    sim = sub.add_parser(
        "simulate",
        help="insert content and engagement events into Postgres",
        description="Ensures --content rows exist, then writes events: exactly --events N and exits; "
        "or --backfill-days D (N events, default 5,000 a day, spread over the past D days); "
        "or, by default, --rate events/s in bursts until --duration or Ctrl-C.",
    )
    sim.add_argument("--content", type=positive_int, default=50, help="content rows to ensure (default 50)")
    sim.add_argument("--events", type=positive_int, help="write exactly N events, then exit")
    sim.add_argument("--rate", type=positive_float, help="events per second (rate mode; default 20)")
    sim.add_argument(
        "--burst", type=positive_int, default=10, help="events per insert in rate mode (default 10)"
    )
    sim.add_argument(
        "--duration", type=positive_float, help="seconds to run in rate mode (default: until Ctrl-C)"
    )
    sim.add_argument("--backfill-days", type=positive_int, help="spread events over the past D days")
    sim.add_argument("--users", type=positive_int, default=2000, help="size of the user pool (default 2000)")
    sim.add_argument("--seed", type=int, help="random seed, for reproducible runs")
    sim.add_argument(
        "--event-types",
        metavar="T1,T2,...",
        default="play,pause,finish,click",
        help="event types to write, each 1-32 characters of [a-z0-9_] (default play,pause,finish,click); "
        "the known four keep their usual mix, any other gets a small weight and no duration, like a "
        "click; a type Postgres' CHECK refuses stops the run before anything is written",
    )
    sim.set_defaults(func=cmd_simulate)  # checks postgres itself, after its flags

    consume = sub.add_parser("consume", help="run an always-on consumer (Ctrl-C drains and exits)")
    consume_sub = consume.add_subparsers(dest="consumer", required=True, parser_class=_Parser)
    _add_module_commands(consume_sub, CONSUMERS, _named_after(argv, "consume"), "consume")
    bench = sub.add_parser("bench", help="measure a consumer against its baseline, in one run")
    bench_sub = bench.add_subparsers(dest="benchmark", required=True, parser_class=_Parser)
    _add_module_commands(bench_sub, BENCHMARKS, _named_after(argv, "bench"), "bench")
    dlq = sub.add_parser("dlq", help="dead letters: replay them once their cause is fixed")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True, parser_class=_Parser)
    replay = dlq_sub.add_parser(
        "replay",
        help="send dead letters back to their topic (--warehouse: re-parse ClickHouse's errors)",
        description="Send DLQ records back to the topic they came from once their cause is fixed, "
        "with a header saying they were replayed; --warehouse re-parses ClickHouse's "
        "engagement_enriched_errors rows instead. Replaying twice changes no count in any sink.",
    )
    if _named_after(argv, "dlq") == "replay":  # the topics module loads Kafka's client
        from engagement_platform.streaming.topics import ENRICHED_DLQ

        replay_arguments(replay, ENRICHED_DLQ)
    replay.set_defaults(func=cmd_dlq_replay)

    sql = sub.add_parser(
        "sql",
        help="run SQL on the warehouse (ClickHouse) and print the rows",
        description="Runs one statement through the ClickHouse HTTP interface of the settings "
        "(CLICKHOUSE_HOST/PORT/DATABASE), as the read-only CLICKHOUSE_READER_USER: a write is refused "
        "with ClickHouse's READONLY error; --admin runs it as the owner (CLICKHOUSE_USER). A query "
        "error ends with ClickHouse's message on stderr and exit code 1. In a browser: "
        "http://CLICKHOUSE_HOST:CLICKHOUSE_PORT/play",
    )
    sql.add_argument(
        "query", nargs="?", metavar="SQL", help="the statement; '-' or nothing: read it from stdin"
    )
    sql.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="table (default); csv: CSV with a header row; "
        "json: JSON Lines, one JSON object per row (column name -> value)",
    )
    sql.add_argument("-d", "--database", help="database to run in (default: CLICKHOUSE_DATABASE)")
    sql.add_argument(
        "--admin",
        action="store_true",
        help="log in as the warehouse's owner (CLICKHOUSE_USER), who may write and change the schema",
    )
    sql.set_defaults(func=cmd_sql, needs=("clickhouse",))

    migrate = sub.add_parser(
        "migrate",
        help="versioned schema migrations of Postgres and ClickHouse",
        description="Postgres: init.sql (version 1), then postgres_migrations/NNN_name.sql; ClickHouse: "
        "clickhouse_ddl/NNN_name[.local|.compose].sql for EP_MODE. Each database records what it "
        "applied in schema_migrations; an applied file must never be edited (it is refused).",
    )
    migrate_sub = migrate.add_subparsers(dest="migrate_command", required=True, parser_class=_Parser)
    m_status = migrate_sub.add_parser(
        "status", help="applied and pending versions per database; exit 1 when any is pending or edited"
    )
    m_status.add_argument("--json", action="store_true", help="machine-readable output")
    m_status.set_defaults(func=cmd_migrate_status, needs=("postgres", "clickhouse"))
    m_up = migrate_sub.add_parser(
        "up",
        help="apply what is pending, Postgres first, one line per file",
        description="Applies every pending file, Postgres first, and prints one line per file. Refuses "
        "before applying anything when an applied file was edited. Waits for another run's lock. "
        "ClickHouse files run with ingestion paused when the consume view exists.",
    )
    m_up.set_defaults(func=cmd_migrate_up, needs=("postgres", "clickhouse"))
    m_new = migrate_sub.add_parser(
        "new", help="create the next numbered empty migration file; print its path"
    )
    m_new.add_argument("database", choices=("postgres", "clickhouse"))
    m_new.add_argument("name", help="what it does, in a-z 0-9 _ (e.g. add_share_event_type)")
    m_new.set_defaults(func=cmd_migrate_new)

    stack = sub.add_parser("stack", help="the local embedded services (no Docker)")
    stack_sub = stack.add_subparsers(dest="stack_command", required=True, parser_class=_Parser)
    s_up = stack_sub.add_parser("up", help="start services that are not running; wait until healthy")
    s_up.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help="default: all (five; KAFKA_BROKERS=3 adds kafka-2, kafka-3, CONNECT_WORKERS=2 adds cdc-2)",
    )
    s_up.set_defaults(func=cmd_stack_up)
    s_down = stack_sub.add_parser("down", help="stop the services this stack started")
    s_down.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help="default: all (five; KAFKA_BROKERS=3 adds kafka-2, kafka-3, CONNECT_WORKERS=2 adds cdc-2)",
    )
    s_down.set_defaults(func=cmd_stack_down)
    s_restart = stack_sub.add_parser("restart", help="stop and start one service")
    s_restart.add_argument("service", metavar="SERVICE")
    s_restart.set_defaults(func=cmd_stack_restart)
    s_status = stack_sub.add_parser("status", help="health, pid and endpoint of each service")
    s_status.add_argument("--json", action="store_true", help="machine-readable output")
    s_status.set_defaults(func=cmd_stack_status)
    s_logs = stack_sub.add_parser("logs", help="print the log of a service or of a process `up` started")
    s_logs.add_argument("service", metavar="SERVICE")
    s_logs.add_argument("-n", "--lines", type=int, default=50, help="lines to show (default 50)")
    s_logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    s_logs.set_defaults(func=cmd_stack_logs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        settings = settings_module.load()
        if needs := getattr(args, "needs", ()):
            from engagement_platform import reachability

            if getattr(args, "waits", False):
                reachability.wait(settings, needs, say=lambda line: print(f"{PROG}: {line}", file=sys.stderr))
            else:
                reachability.require(settings, needs)
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
