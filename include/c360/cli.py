"""The project's commands (called by the Makefile): setup, demo, up, down, psql, env, quarantine.

    python -m c360.cli demo     # generate sources, run every DAG for the demo interval, print a summary

Only the argument parsing and the commands live here: what they use (and tests and benchmarks use too) is in
``c360.services`` (PostgreSQL, the Airflow services) and ``c360.runs`` (DAG runs with dag.test, the reports).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from c360 import settings
from c360.runs import demo_logical_date, quarantine_report, reset_warehouse, run_dags, summary
from c360.services import admin_password, setup, setup_env_only, start_services, stop_services

log = logging.getLogger("c360")


def demo_scale(args: argparse.Namespace):
    """The generator scale of ``demo`` (``build_parser().parse_args(["demo"])``: what ``make demo`` runs)."""
    from c360 import generator

    return generator.Scale(customers=args.customers, days=args.days, orders_per_day=args.orders_per_day,
                           sessions_per_hour=args.sessions_per_hour)


def cmd_demo(args: argparse.Namespace) -> int:
    from c360 import generator

    t0 = time.monotonic()
    print("Starting PostgreSQL and preparing Airflow's metadata DB ...", flush=True)
    setup()
    scale = demo_scale(args)
    print(f"Generating source systems: {scale}", flush=True)
    data = generator.generate(scale)
    reset_warehouse()
    settings.lineage_file().unlink(missing_ok=True)  # the summary counts this demo's lineage events
    counts = generator.load_sources(data)
    files = generator.write_landing(data)
    print(f"  source rows: {counts}; GA export files: {files}; injected defects: {data.defects}", flush=True)
    when = demo_logical_date()
    print(f"Running every DAG for the interval before {when:%Y-%m-%d %H:%M} UTC ...", flush=True)
    states = run_dags(when)
    print(summary())
    from c360 import governance

    print("\n" + governance.show_customer())
    print(f"\nDemo finished in {time.monotonic() - t0:.0f} s.")
    failed = {d: s for d, s in states.items() if s != "success"}
    if failed:
        print(f"DAG runs that did not succeed: {failed}", file=sys.stderr)
        return 1
    return 0


# ---- make up / down ---------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    try:
        url = start_services(args.port)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"\nAirflow is up: {url}\nLogin: admin / {admin_password() or '(see api-server log)'}\nStop with: make down")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from c360 import pg

    for name in stop_services():
        print(f"stopped {name}")
    if pg.stop_embedded():
        print("stopped the embedded PostgreSQL")
    return 0


def cmd_psql(args: argparse.Namespace) -> int:
    from c360 import pg

    setup_env_only()
    p = pg.conn_params(settings.WAREHOUSE_CONN_ID)
    if args.role:  # make psql ROLE=c360_consumer: as that role's login (c360.governance)
        from c360 import governance

        p = {**p, **governance.login(args.role)}
    argv = [str(pg.psql_binary()), "-h", p.get("host", "localhost"), "-p", str(p.get("port", 5432)),
            "-U", p.get("user", "postgres"), "-d", p["dbname"]]
    if args.sql:
        argv += ["-v", "ON_ERROR_STOP=1", "-c", args.sql]
    env = {**os.environ, **({"PGPASSWORD": p["password"]} if p.get("password") else {})}
    os.execvpe(argv[0], argv, env)
    return 0  # not reached


def cmd_env(args: argparse.Namespace) -> int:
    from shlex import quote

    setup_env_only()
    for k, v in settings.runtime_env().items():
        print(f"export {k}={quote(v)}")
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    setup_env_only()
    print(quarantine_report(args.dataset, args.interval))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m c360.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="generate the sources and run every DAG for the demo interval")
    demo.add_argument("--customers", type=int, default=int(os.environ.get("C360_DEMO_CUSTOMERS", 20_000)))
    demo.add_argument("--days", type=int, default=30)
    demo.add_argument("--orders-per-day", type=int, default=2_000)
    demo.add_argument("--sessions-per-hour", type=int, default=200)
    demo.set_defaults(func=cmd_demo)
    up = sub.add_parser("up", help="start Airflow on 127.0.0.1")
    up.add_argument("--port", type=int, default=int(os.environ.get("C360_API_PORT", 8080)))
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop what up and demo started").set_defaults(func=cmd_down)
    psql = sub.add_parser("psql", help="psql on the warehouse")
    psql.add_argument("--sql", default=os.environ.get("SQL") or None)
    psql.add_argument("--role", default=os.environ.get("ROLE") or None, help="a role of the registry's governance")
    psql.set_defaults(func=cmd_psql)
    quarantine = sub.add_parser("quarantine", help="quarantined rows of a dataset, by reason")
    quarantine.add_argument("--dataset", required=True)
    quarantine.add_argument("--interval", help="partition key, e.g. 2026-11-20T1245: list its rows")
    quarantine.set_defaults(func=cmd_quarantine)
    sub.add_parser("env", help="print the environment as export lines").set_defaults(func=cmd_env)
    sub.add_parser("setup", help="start PostgreSQL, create databases, migrate Airflow").set_defaults(
        func=lambda a: (setup(), 0)[1])
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
