"""The JVM's ahead-of-time cache: a run records, the next start builds the cache and uses it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from engagement_platform import settings as settings_module
from engagement_platform.local_stack import jvm


@pytest.fixture
def aot_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(jvm, "AOT_DIR", tmp_path)
    return tmp_path


def version_argv(aot: jvm.AotCache) -> list[str]:
    """A short real run of the broker's jars: prints Kafka's version and exits."""
    return [str(aot.binary), *aot.heap_opts.split(), *jvm.GC_FLAGS, *aot.flags(), "-cp", jvm.classpath(),
            "kafka.Kafka", "--version"]  # fmt: skip


def test_off_when_disabled() -> None:
    assert jvm.aot_cache(settings_module.load({"EP_JVM_AOT": "false"}), "kafka", "-Xmx256m") is None


def test_the_key_follows_the_flags(aot_dir: Path) -> None:
    s = settings_module.load({})
    a, b = jvm.aot_cache(s, "kafka", "-Xmx256m"), jvm.aot_cache(s, "kafka", "-Xmx512m")
    if a is None or b is None:
        pytest.skip("this JDK has no AOT cache")
    assert a.key != b.key
    assert a.key == jvm.aot_cache(s, "cdc", "-Xmx256m").key  # type: ignore[union-attr]


def test_record_build_use(aot_dir: Path) -> None:
    aot = jvm.aot_cache(settings_module.load({}), "kafka", "-Xmx256m")
    if aot is None:
        pytest.skip("this JDK has no AOT cache")
    assert "-XX:AOTMode=record" in aot.flags()
    trained = subprocess.run(version_argv(aot), capture_output=True, text=True, check=True)
    version = trained.stdout.splitlines()[0]
    assert "AOTConfiguration recorded" in trained.stdout
    assert len(aot.records()) == 1

    aot.build(jvm.classpath())
    assert aot.cache.stat().st_size > 1_000_000
    assert aot.records() == []  # consumed
    assert aot.flags()[0] == f"-XX:AOTCache={aot.cache}"
    used = subprocess.run(version_argv(aot), capture_output=True, text=True, check=True)
    assert used.stdout.strip() == version
    assert "warning" not in used.stdout + used.stderr  # the cache matched: nothing refused


def test_a_broken_record_is_dropped(aot_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    aot = jvm.aot_cache(settings_module.load({}), "kafka", "-Xmx256m")
    if aot is None:
        pytest.skip("this JDK has no AOT cache")
    (aot_dir / f"kafka-{aot.key}.1-x.aotconf").write_bytes(b"not a record")
    aot.build(jvm.classpath())
    assert not aot.cache.exists()
    assert aot.records() == []
    assert "no AOT cache" in caplog.text
    assert "-XX:AOTMode=record" in aot.flags()  # the next run records again
