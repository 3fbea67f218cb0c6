"""The audit trail: a publish leaves an entry in its own transaction; nobody changes or removes an entry."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from c360 import pg, settings, warehouse

pytestmark = pytest.mark.integration


def test_a_publish_is_audited_and_entries_cannot_change(platform):
    interval = warehouse.Interval(datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC),
                                  "audit-trail-test", "audit_trail_dag")
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        warehouse.bootstrap(conn)
        warehouse.log_publish(conn, "audit_test", "c360.audit_test", interval, "full", 7, 5)
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        (entry,) = conn.execute(
            "select action, actor, dag_id, dag_run_id, subject, rows, detail->>'mode', detail->>'rows_in_batch' "
            "from governance.audit_log where dag_run_id = 'audit-trail-test'").fetchall()
        (user,) = conn.execute("select session_user").fetchone()
    assert entry == ("publish", user, "audit_trail_dag", "audit-trail-test", "c360.audit_test", 5, "full", "7")
    for statement in ("update governance.audit_log set rows = 0", "delete from governance.audit_log",
                      "truncate governance.audit_log"):
        with pg.connect(settings.WAREHOUSE_CONN_ID) as conn, pytest.raises(
                psycopg.errors.RaiseException, match="governance.audit_log is append-only"):
            conn.execute(statement)


def test_an_action_that_rolls_back_leaves_no_entry(platform):
    interval = warehouse.Interval(datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC),
                                  "audit-rollback-test", "audit_trail_dag")
    with pytest.raises(RuntimeError), pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        warehouse.log_publish(conn, "audit_test", "c360.audit_test", interval, "full", 1, 1)
        raise RuntimeError("the publish failed after logging")
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        assert conn.execute("select count(*) from governance.audit_log where dag_run_id = "
                            "'audit-rollback-test'").fetchone() == (0,)
