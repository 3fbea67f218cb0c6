"""What `make test` and .ci/run install on a fresh machine: the development requirements and the browser.

The Makefile installs requirements-dev.txt (the runtime list plus the test tools) and reinstalls when either
requirements file changes; `make test` installs Debian's chromium and chromium-driver when they are missing and
it can (.ci/install-browser), and otherwise says exactly what to install. The browser step runs here against
stand-in commands on PATH, so nothing is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from c360 import settings

ROOT = settings.PROJECT_DIR
INSTALL_BROWSER = ROOT / ".ci" / "install-browser"


def _make_n(folder: Path, venv: Path) -> str:
    return subprocess.run(["make", "-n", "install", f"VENV={venv}"], cwd=folder, capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.skipif(not shutil.which("make"), reason="make is not installed")
def test_install_uses_the_dev_list_and_its_stamp_follows_both_files(tmp_path):
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    venv = tmp_path / "venv"
    first = _make_n(tmp_path, venv)
    assert "-r requirements-dev.txt" in first, first
    stamp = re.findall(r"\.installed-(\d+)", first)[-1]
    stamps = {stamp}
    for name in ("requirements.txt", "requirements-dev.txt"):
        with (tmp_path / name).open("a") as f:
            f.write("# changed\n")
        stamps.add(re.findall(r"\.installed-(\d+)", _make_n(tmp_path, venv))[-1])
    assert len(stamps) == 3, f"the stamp does not change with each requirements file: {stamps}"
    # once installed (the stamp of the current files exists), make has nothing to do
    current = re.findall(r"\.installed-(\d+)", _make_n(tmp_path, venv))[-1]
    venv.mkdir()
    (venv / f".installed-{current}").touch()
    assert "pip install" not in _make_n(tmp_path, venv)


def test_test_target_installs_the_browser_and_ci_runs_the_same_targets():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: install browser\b", makefile, re.M), "make test must depend on install and browser"
    assert re.search(r"^browser:.*\n\tbash \.ci/install-browser$", makefile, re.M)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make lint" in ci and "make test" in ci
    assert "pip install" not in ci, ".ci/run installs through make, the same lists a developer gets"


def _stand_ins(tmp_path: Path, *commands: str) -> dict[str, str]:
    """PATH with bash's helpers and stand-ins for the given commands (each records its arguments)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("bash", "env", "id"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    for command in commands:
        script = bin_dir / command
        script.write_text(f'#!{shutil.which("bash")}\necho "{command} $*" >> "{tmp_path}/calls"\n')
        script.chmod(0o755)
    return {"PATH": str(bin_dir), "HOME": str(tmp_path)}


def _run(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([shutil.which("bash"), str(INSTALL_BROWSER)], env=env, capture_output=True, text=True,
                          timeout=30)


def _calls(tmp_path: Path) -> list[str]:
    calls = tmp_path / "calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_browser_present_installs_nothing(tmp_path):
    done = _run(_stand_ins(tmp_path, "chromium", "chromedriver", "apt-get"))
    assert done.returncode == 0 and not _calls(tmp_path), (done.stdout, done.stderr)


@pytest.mark.skipif(os.geteuid() != 0, reason="the install path is taken as root")
def test_missing_browser_is_installed_with_apt_as_root(tmp_path):
    done = _run(_stand_ins(tmp_path, "chromium", "apt-get"))  # chromedriver missing
    assert done.returncode == 0, done.stderr
    assert _calls(tmp_path) == ["apt-get update -qq", "apt-get install -y -qq chromium-driver"]


def test_without_apt_it_says_what_to_install_and_lets_the_suite_run(tmp_path):
    done = _run(_stand_ins(tmp_path))
    assert done.returncode == 0
    assert "sudo apt-get install chromium chromium-driver" in done.stderr
    assert "--ignore=tests/e2e/test_steward_page.py" in done.stderr
