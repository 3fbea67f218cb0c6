"""What a long command shows its user: one line per step on the terminal, everything else in a log file.

``with progress.logged(path):`` sends the process's standard output and error to ``path`` at the file-descriptor
level (Airflow's task logs, Spark's, warnings, what subprocesses print) and keeps the terminal for the steps:
``with progress.step(label) as s:`` shows a live status while the step runs (on a terminal: a spinner, the
elapsed time and, for a DAG run, the task running now) and one line when it ends — ``✓ label  detail  12 s``, or
``✗`` with what failed, the last lines of the failing part of the log and the log's path.
``progress.advance(label, done, total)`` moves a bar for a long loop (the generator's COPY, a benchmark).
``progress.say(text)`` prints a line of the command's own output.

Outside ``logged`` (tests, benchmarks run by hand) a step prints its one line to standard output and
``advance`` draws nothing: the same calls, no terminal tricks.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# How many lines of the log a failure shows, and how wide each may be.
EXCERPT_LINES = 12
EXCERPT_WIDTH = 220

# dag.test() opens each task's part of the log with this line (airflow.sdk.definitions.dag); the task running
# now and a failed task's own lines are found by it.
TASK_START = re.compile(r"\[DAG TEST\] running task <TaskInstance: (?P<dag>[\w.-]+?)\.(?P<task>[\w.-]+) ")
# ... and a run's closing lines follow its last task's.
RUN_END = re.compile(r"Marking run <DagRun |DagRun Finished: ")


class StepFailed(RuntimeError):
    """A step raised: its traceback is in the log, its excerpt and the log path were shown."""


@dataclass
class Step:
    label: str
    started: float = field(default_factory=time.monotonic)
    log_offset: int = 0
    detail: str = ""
    failed: bool = False
    excerpt: list[str] = field(default_factory=list)
    running_task: str = ""
    failed_task: str | None = None
    line: bool = True

    def done(self, detail: str) -> None:
        """What the step's line says when it ends well (``success``, ``20,000 customers``)."""
        self.detail = detail

    def fail(self, detail: str, task: str | None = None) -> None:
        """The step failed without raising (a DAG run that ended failed): its line says ``detail``; the excerpt
        is the log of ``task`` (a task id of the DAG run this step ran) or else the step's last log lines."""
        self.detail, self.failed, self.failed_task = detail, True, task
        self.excerpt = _excerpt(_log_since(self.log_offset), task)


class _Plain:
    """No session: each step's line on standard output."""

    def begin(self, step: Step) -> None:
        pass

    def end(self, step: Step) -> None:
        if not (step.line or step.failed):
            return
        print(_line(step), flush=True)
        for line in step.excerpt:
            print(f"    {line}", flush=True)

    def advance(self, label: str, done: int, total: int) -> None:
        pass

    def say(self, text: str) -> None:
        print(text, flush=True)


class _Session:
    """Inside ``logged``: the terminal for the steps (rich), the log file for the rest."""

    def __init__(self, console, log_path: Path) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console, self.log_path = console, log_path
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True,
                                 redirect_stdout=False, redirect_stderr=False)
        self.tasks: dict[str, int] = {}
        self.current: Step | None = None
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch_log, daemon=True)

    def start(self) -> None:
        if self.console.is_terminal:  # off a terminal (CI, a pipe) no live display: the steps' lines alone
            self.progress.start()
            self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher.is_alive():
            self._watcher.join(timeout=2)
        if self.progress.live.is_started:
            self.progress.stop()

    def begin(self, step: Step) -> None:
        self.current = step
        self.tasks[step.label] = self.progress.add_task(step.label, total=None)

    def end(self, step: Step) -> None:
        self.current = None
        for label in list(self.tasks):  # the step's bar and any advance() bars inside it
            self.progress.remove_task(self.tasks.pop(label))
        if not (step.line or step.failed):
            return
        self.console.print(_line(step), markup=False, highlight=False)
        if step.excerpt:
            self.console.print(f"    last lines of {'task ' + step.failed_task if step.failed_task else 'its log'}:",
                               markup=False, highlight=False)
            for line in step.excerpt:
                self.console.print(f"    | {line}", markup=False, highlight=False)
            self.console.print(f"    full log: {self.log_path}", markup=False, highlight=False)

    def advance(self, label: str, done: int, total: int) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(f"  {label}", total=total)
        self.progress.update(self.tasks[label], completed=done, total=total)

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def _watch_log(self) -> None:
        """Show the task a DAG run is running now (dag.test() logs it as the task starts)."""
        with self.log_path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            while not self._stop.wait(0.5):
                found = None
                for raw in f.readlines():
                    if m := TASK_START.search(raw.decode("utf-8", "replace")):
                        found = m["task"]
                step = self.current
                if found and step is not None and step.label in self.tasks:
                    step.running_task = found
                    self.progress.update(self.tasks[step.label], description=f"{step.label}: {found}")


_ui: _Plain | _Session = _Plain()


@contextmanager
def logged(path: Path) -> Generator[Path, None, None]:
    """Send this process's standard output and error (and its children's) to ``path`` until the block ends;
    steps, bars and ``say`` go to the terminal. The caller's duty: nothing else in the process swaps file
    descriptors 1 and 2 meanwhile (the block restores them on exit, whatever it raised)."""
    global _ui
    from rich.console import Console

    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1, encoding="utf-8", errors="replace")
    # lines never wrapped: a terminal wraps them, a log keeps them whole
    console = Console(file=terminal, soft_wrap=True, highlight=False)
    session = _Session(console, path)
    session.start()
    _ui = session
    try:
        yield path
    finally:
        _ui = _Plain()
        session.stop()
        terminal.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)


@contextmanager
def step(label: str, line: bool = True) -> Generator[Step, None, None]:
    """One step of a command: live while it runs, one line when it ends (with ``line=False`` only when it
    fails: the caller prints its own). A step that raises shows its exception, the last lines of its log and
    the log path, and raises :class:`StepFailed` from it."""
    s = Step(label, log_offset=_log_size(), line=line)
    _ui.begin(s)
    try:
        yield s
    except Exception as exc:
        traceback.print_exc()  # the whole traceback: into the log inside a session
        sys.stderr.flush()
        s.detail, s.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", True
        s.excerpt = _excerpt(_log_since(s.log_offset), None) if isinstance(_ui, _Session) else []
        _ui.end(s)
        raise StepFailed(f"{label}: {s.detail}") from exc
    _ui.end(s)


def advance(label: str, done: int, total: int) -> None:
    _ui.advance(label, done, total)


def say(text: str = "") -> None:
    _ui.say(text)


def log_path() -> Path | None:
    """The log file of the active session, if any."""
    return _ui.log_path if isinstance(_ui, _Session) else None


def _line(step: Step) -> str:
    mark = "✗" if step.failed else "✓"
    return f"{mark} {step.label:<38} {step.detail:<40} {time.monotonic() - step.started:5.0f} s".rstrip()


def _log_size() -> int:
    path = log_path()
    sys.stdout.flush()
    sys.stderr.flush()
    return path.stat().st_size if path and path.exists() else 0


def _log_since(offset: int) -> list[str]:
    path = log_path()
    if path is None:
        return []
    sys.stdout.flush()
    sys.stderr.flush()
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace").splitlines()


def _excerpt(lines: list[str], task: str | None) -> list[str]:
    """What a failure shows of ``lines``: ``task``'s part of them (from its start line to the next task's or the
    run's end) or all of them; of that part its last traceback (up to the exception's message) if it has one,
    else its last lines. At most ``EXCERPT_LINES``; every line but the exception's cut to ``EXCERPT_WIDTH``."""
    part = lines
    if task is not None:
        starts = [i for i, line in enumerate(lines) if (m := TASK_START.search(line)) and m["task"] == task]
        if starts:
            part = lines[starts[-1]:]
            for j, line in enumerate(part[1:], start=1):
                if TASK_START.search(line) or RUN_END.search(line):
                    part = part[:j]
                    break
    message: str | None = None
    tracebacks = [i for i, line in enumerate(part) if line.startswith("Traceback (most recent call last):")]
    if tracebacks:
        tb = part[tracebacks[-1]:]
        end = next((j for j, line in enumerate(tb[1:], start=1) if not line.startswith(" ")), len(tb) - 1)
        message = tb[end]
        part = tb[:end]
    # no blank lines, nor the ^^^ markers under a traceback's code
    part = [line for line in part if line.strip(" ^~")][-(EXCERPT_LINES - (message is not None)):]
    cut = [line if len(line) <= EXCERPT_WIDTH else line[:EXCERPT_WIDTH - 1] + "…" for line in part]
    return [*cut, message] if message is not None else cut
