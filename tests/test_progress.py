"""c360.progress: the terminal gets one line per step, the log file gets everything else (this process's
prints, warnings and logging, and what its subprocesses write), and a failure shows what broke.

Each case runs a small script in a subprocess whose standard output is a pipe (what a user's terminal or CI's log
is to ``make demo``), so the file-descriptor redirection is the real one.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from c360 import progress, settings


def _run(tmp_path: Path, body: str) -> tuple[subprocess.CompletedProcess, str]:
    log = tmp_path / "logs" / "run.log"
    script = textwrap.dedent("""
        import logging, subprocess, sys, warnings
        from pathlib import Path
        from c360 import progress
        LOG = Path(sys.argv[1])
    """) + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", script, str(log)], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(settings.INCLUDE_DIR), "PATH": "/usr/bin:/bin"})
    return proc, log.read_text() if log.exists() else ""


def test_steps_reach_the_terminal_and_everything_else_the_log(tmp_path):
    proc, log = _run(tmp_path, """
        logging.basicConfig(level=logging.INFO)
        with progress.logged(LOG):
            with progress.step("first step") as s:
                print("a print of the step")
                print("to stderr", file=sys.stderr)
                logging.getLogger("x").info("a log record")
                warnings.warn("a warning")
                subprocess.run(["sh", "-c", "echo from a child; echo child stderr >&2"], check=True)
                s.done("3 things")
            progress.say("the command's own line")
        print("after the session")
    """)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0].startswith("✓ first step") and "3 things" in out[0], out
    assert out[1:] == ["the command's own line", "after the session"], out
    assert proc.stderr == "", proc.stderr
    for text in ("a print of the step", "to stderr", "a log record", "a warning", "from a child", "child stderr"):
        assert text in log, f"{text!r} is not in the log:\n{log}"
    assert (tmp_path / "logs" / "run.log").stat().st_mode & 0o077 == 0, "the log is the user's alone"


def test_a_step_that_raises_shows_its_exception_and_the_log_path(tmp_path):
    proc, log = _run(tmp_path, """
        with progress.logged(LOG):
            try:
                with progress.step("load the sources"):
                    print("noise before the failure")
                    def inner():
                        raise ValueError("orders.csv row 7, column amount: expected a decimal, got 'abc'")
                    inner()
            except progress.StepFailed as exc:
                progress.say(f"caught: {exc}")
            with progress.step("next step") as s:
                s.done("ran")
    """)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("✗ load the sources"), out
    assert "ValueError: orders.csv row 7, column amount: expected a decimal, got 'abc'" in out
    assert 'in inner' in out, "the excerpt is the traceback's innermost frames"
    assert f"full log: {tmp_path / 'logs' / 'run.log'}" in out
    assert "caught: load the sources: ValueError" in out
    assert "✓ next step" in out, "the session goes on after a failed step"
    assert "noise before the failure" in log and "Traceback (most recent call last)" in log
    assert "noise before the failure" not in out


def test_a_failed_dag_run_shows_its_failed_tasks_part_of_the_log(tmp_path):
    # what dag.test() writes: a start line per task, the failed task's traceback, then later tasks' and the
    # run's closing lines, which are not the failure's
    proc, _ = _run(tmp_path, """
        def task(name):
            print(f"2026-12-06T21:30:20Z [info ] [DAG TEST] running task <TaskInstance: customer_daily.{name} "
                  "manual__2026 [scheduled]> [airflow.sdk.definitions.dag]")
        with progress.logged(LOG):
            with progress.step("customer_daily") as s:
                task("extract_to_raw")
                print("extracted 20 rows")
                task("check_quality")
                print("Traceback (most recent call last):")
                print('  File "quality.py", line 9, in enforce')
                print("    raise AirflowFailException(msg)")
                print("    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^")
                print("AirflowFailException: customer: blocking check failed: email_address missing 12.5 % > 5 %")
                print("2026-12-06T21:30:22Z [info ] ::endgroup::")
                print("2026-12-06T21:30:23Z [info ] Marking run <DagRun customer_daily @ 2026> failed")
                s.fail("failed: check_quality failed", task="check_quality")
    """)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("✗ customer_daily") and "check_quality failed" in lines[0], lines
    assert lines[1] == "    last lines of task check_quality:", lines
    excerpt = [line.removeprefix("    | ") for line in lines[2:-1]]
    assert excerpt == ["Traceback (most recent call last):", '  File "quality.py", line 9, in enforce',
                       "    raise AirflowFailException(msg)",
                       "AirflowFailException: customer: blocking check failed: email_address missing 12.5 % > 5 %"]
    assert lines[-1].startswith("    full log: ")


def test_without_a_session_a_step_prints_its_line_and_raises(capsys):
    with progress.step("plain") as s:
        s.done("fine")
    try:
        with progress.step("broken"):
            raise RuntimeError("boom")
    except progress.StepFailed as exc:
        assert isinstance(exc.__cause__, RuntimeError)
    else:
        raise AssertionError("a step that raises must raise StepFailed")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("✓ plain") and "fine" in out[0]
    assert out[1].startswith("✗ broken") and "RuntimeError: boom" in out[1]


def test_excerpt_cuts_long_lines_but_never_the_message():
    long = "x" * 1000
    lines = ["Traceback (most recent call last):", f"  File {long}", f"ValueError: {long}"]
    shown = progress._excerpt(lines, None)
    assert len(shown[1]) == progress.EXCERPT_WIDTH and shown[1].endswith("…")
    assert shown[-1] == f"ValueError: {long}"
    many = [f"line {i}" for i in range(100)]
    assert progress._excerpt(many, None) == many[-progress.EXCERPT_LINES:]
