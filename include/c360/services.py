"""The platform's processes on this machine: the embedded PostgreSQL and its databases (``setup``), and the
Airflow services ``make up`` starts on 127.0.0.1 (``start_services`` / ``stop_services``, PIDs in
``.state/pids``). Used by the commands (``c360.cli``), the tests and the benchmarks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from c360 import procs, settings

API_HOST = "127.0.0.1"

SERVICES = {
    "api-server": ["api-server", "--host", API_HOST, "--port", "{port}"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


def setup() -> Path:
    """Start the embedded PostgreSQL (unless connections point elsewhere), create databases, migrate Airflow."""
    from c360 import pg

    settings.state_dir().mkdir(parents=True, exist_ok=True)
    socket_dir = pg.start_embedded()
    pg.ensure_databases(socket_dir)
    env = settings.apply_runtime_env(socket_dir)
    settings.airflow_home().mkdir(parents=True, exist_ok=True)
    settings.lineage_file().parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([_bin("airflow"), "db", "migrate"], env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL)
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        from c360 import governance, warehouse

        warehouse.bootstrap(conn)
        governance.apply(conn)  # roles, masking views, row security (README "Governance")
    return socket_dir


def setup_env_only() -> None:
    """The environment and the databases, without Airflow's migration (for psql and env)."""
    from c360 import pg

    settings.state_dir().mkdir(parents=True, exist_ok=True)
    socket_dir = pg.start_embedded()
    pg.ensure_databases(socket_dir)
    settings.apply_runtime_env(socket_dir)


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def pid_dir() -> Path:
    return settings.state_dir() / "pids"


def start_services(port: int) -> str:
    """Start the Airflow services on 127.0.0.1 (PIDs in .state/pids); return the API URL once it answers."""
    setup()
    url = f"http://{API_HOST}:{port}"
    env = {**os.environ, "AIRFLOW__API__BASE_URL": url, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin"}
    pid_dir().mkdir(parents=True, exist_ok=True)
    logs = settings.state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for name, argv in SERVICES.items():
        pid_file = pid_dir() / f"{name}.pid"
        if pid_file.exists() and procs.alive(int(pid_file.read_text())):
            print(f"{name} already running (pid {pid_file.read_text()})")
            continue
        cmd = [_bin("airflow"), *[a.format(port=port) for a in argv]]
        with (logs / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        pid_file.write_text(str(proc.pid))
        print(f"started {name} (pid {proc.pid}), log {logs / f'{name}.log'}")
    if not _wait_http(f"{url}/api/v2/monitor/health", 120):
        raise RuntimeError(f"api-server did not answer on {url} within 120 s; see {logs}/api-server.log")
    return url


def admin_password() -> str | None:
    pw_file = settings.airflow_home() / "simple_auth_manager_passwords.json.generated"
    return json.loads(pw_file.read_text()).get("admin") if pw_file.exists() else None


def _wait_http(url: str, seconds: float) -> bool:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


def stop_services() -> list[str]:
    """Stop every service start_services started (each with the workers it spawned)."""
    stopped = []
    for pid_file in sorted(pid_dir().glob("*.pid")) if pid_dir().exists() else []:
        pid = int(pid_file.read_text())
        if procs.stop_group(pid, grace_s=15):
            stopped.append(f"{pid_file.stem} (pid {pid})")
        pid_file.unlink()
    return stopped
