"""c360.pg.connect: a connection that fails names the Airflow connection and its variable, never the password."""

from __future__ import annotations

import json
import traceback

import pytest

from c360 import pg

PASSWORD = "s3cret-Pw-4711"


def _failure(conn_id: str) -> pg.ConnectionFailed:
    with pytest.raises(pg.ConnectionFailed) as failed:
        pg.connect(conn_id, connect_timeout=5)
    return failed.value


def _everything_printed(e: BaseException) -> str:
    """What a task log shows: the message and the whole traceback, with any chained exception."""
    return "".join(traceback.format_exception(e))


@pytest.mark.parametrize("value", [
    f"postgresql://etl:{PASSWORD}@127.0.0.1:1/oltp",
    json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "etl", "password": PASSWORD,
                "schema": "oltp"}),
])
def test_a_dead_source_names_the_connection_and_its_variable(monkeypatch, value):
    monkeypatch.setenv("AIRFLOW_CONN_C360_OLTP_SOURCE", value)
    e = _failure("c360_oltp_source")
    assert str(e).startswith("connection 'c360_oltp_source' (AIRFLOW_CONN_C360_OLTP_SOURCE) failed: "
                             'connection to server at "127.0.0.1", port 1 failed'), str(e)
    assert PASSWORD not in _everything_printed(e)
    assert isinstance(e, RuntimeError)  # an ordinary task error: Airflow retries it


@pytest.mark.integration
def test_a_password_the_server_echoes_is_masked(platform, monkeypatch):
    """libpq does not print passwords, but a server message may hold the same text (here the database name)."""
    from c360 import settings

    socket_dir = pg.conn_params(settings.WAREHOUSE_CONN_ID)["host"]
    monkeypatch.setenv("AIRFLOW_CONN_C360_TEST_ECHO", json.dumps(
        {"conn_type": "postgres", "host": socket_dir, "login": "postgres", "password": PASSWORD,
         "schema": PASSWORD}))
    e = _failure("c360_test_echo")
    assert str(e).startswith("connection 'c360_test_echo' (AIRFLOW_CONN_C360_TEST_ECHO) failed: "), str(e)
    assert 'database "***" does not exist' in str(e), str(e)
    assert PASSWORD not in _everything_printed(e)
