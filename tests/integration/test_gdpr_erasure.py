"""GDPR erasure end to end on real PostgreSQL, Spark and the lake (README "Erasure and retention").

Demo data is loaded through every dataset DAG and Customer 360 (two as-of dates); the person is a customer
who registered twice (identity resolution merges the two ids), with orders, line items, payments, web sessions
(one cut short: quarantined), a superseded source version (quarantined) and rows in a left-behind batch table.
The erasure is requested with the second id. Afterwards no table of the warehouse (every schema, every column,
JSON included) and no file of the lake (every file: Parquet values and bytes, JSON and CSV text) holds one of
their ids, visitor ids, emails, phones, order or payment ids; every table lost exactly the person's rows; and
that stays so after a full-refresh rerun, a backfill of an old interval, a re-delivered GA export and a
Customer 360 rerun.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import reset_erasure_state, run_succeeds, wh
from psycopg import sql

from c360 import erasure, generator, lake, pg, settings
from c360.registry import load_registry
from c360.warehouse import ident

pytestmark = pytest.mark.integration

SCALE = generator.Scale(customers=600, days=10, orders_per_day=120, sessions_per_hour=6, ga_days=1)
END = SCALE.end_ts.replace(tzinfo=UTC)  # 2026-11-21 00:00: every dataset's first run loads all history before it
GA_HOUR = END - timedelta(hours=1)  # the GA hour the person's sessions are in (and web analytics is run for)
DATASET_DAGS = ["customer_daily", "product_weekly", "brand_weekly", "orders_every_15_minutes",
                "order_line_item_every_15_minutes", "transactions_daily", "web_analytics_hourly"]
VISITOR = "VERASURE0001"  # a visitor id planted for the person (the generator maps 70 % of customers)


def _run(dagbag, dag_id: str, logical: datetime, **conf):
    return run_succeeds(dagbag.dags[dag_id], logical, **conf)


# ---- the person, planted in generated data -----------------------------------------------------------------


def _pick_and_plant(data: generator.Generated) -> dict:
    """The customer with most orders among those who registered twice, made to have every kind of row."""
    customers = data.tables["customer"].to_pylist()
    originals = [r for r in customers if r["customer_id"].startswith("C")]
    orders = Counter(data.tables["orders"]["customer_id"].to_pylist())
    pairs = []
    for twin in (r for r in customers if r["customer_id"].startswith("D")):
        for r in originals:
            same_email = erasure.normalise_email(r["email_address"]) == erasure.normalise_email(twin["email_address"])
            same_phone = erasure.normalise_phone(r["phone_number"]) == erasure.normalise_phone(twin["phone_number"])
            if (same_email and erasure.normalise_email(r["email_address"])) or \
                    (same_phone and erasure.normalise_phone(r["phone_number"])):
                pairs.append((orders[r["customer_id"]], r, twin))
    assert pairs, "the generator made no customer register twice"
    n_orders, original, twin = max(pairs, key=lambda p: (p[0], p[1]["customer_id"]))
    assert n_orders >= 2
    # a superseded version of the original at the source (other phone): quarantined by the stage job
    stale = {**original, "phone_number": "+1-555-9990001", "updated_at": original["updated_at"] - timedelta(days=3)}
    data.tables["customer"] = pa.concat_tables([data.tables["customer"], pa.Table.from_pylist(
        [stale], schema=data.tables["customer"].schema)])
    # a web visitor of theirs with a session in GA_HOUR, and the same session cut short (quarantined)
    data.visitor_map += f"{VISITOR},{original['customer_id']}\n".encode()
    rel = f"dt={GA_HOUR:%Y-%m-%d}/hr={GA_HOUR:%H}/ga_sessions_{GA_HOUR:%Y%m%d_%H}.json"
    lines = data.ga_files[rel].decode().splitlines()
    session = next(json.loads(x) for x in lines if x.strip().startswith("{") and x.strip().endswith("}"))
    mine = json.dumps({**session, "fullVisitorId": VISITOR, "visitId": 4242}, separators=(",", ":"))
    data.ga_files[rel] = ("\n".join([*lines, mine, mine[: len(mine) // 2]]) + "\n").encode()
    return {"original": original["customer_id"], "twin": twin["customer_id"], "ga_file": rel}


def _identifiers(person: dict) -> dict[str, set[str]]:
    """Everything that identifies the person, from the sources (every version of every row) and the visitor map."""
    ids = {person["original"], person["twin"]}
    with pg.connect(settings.REDSHIFT_CONN_ID) as conn:
        rows = conn.execute("select email_address, phone_number from customer where customer_id = any(%s)",
                            (list(ids),)).fetchall()
    emails = {e for e, _ in rows if e} | {erasure.normalise_email(e) for e, _ in rows if erasure.normalise_email(e)}
    phones = {p for _, p in rows if p} | {erasure.normalise_phone(p) for _, p in rows if erasure.normalise_phone(p)}
    vmap = lake.path(f"{settings.landing_uri()}/web_analytics/visitor_map/visitor_map.csv").read_text().splitlines()
    visitors = {line.split(",")[0] for line in vmap[1:] if line.split(",")[1] in ids}
    with pg.connect(settings.OLTP_CONN_ID) as conn:
        orders = conn.execute("select order_id, transaction_id from orders where customer_id = any(%s) union all "
                              "select order_id, transaction_id from late.orders where customer_id = any(%s)",
                              (list(ids), list(ids))).fetchall()
    return {"customer_ids": ids, "visitor_ids": visitors, "emails": emails, "phones": phones,
            "order_ids": {o for o, _ in orders}, "transaction_ids": {t for _, t in orders if t}}


def _patterns(idents: dict[str, set[str]]) -> list[str]:
    """Regular expressions (PostgreSQL and Python alike) matching any of the identifiers in text."""
    out = []
    for kind, values in idents.items():
        for v in sorted(values):
            if kind == "emails":
                out.append(re.escape(v.lower()))  # matched case-insensitively
            elif kind == "phones" and v.isdigit():
                out.append(f"(^|[^0-9]){v}([^0-9]|$)")
            elif kind == "phones":
                out.append(re.escape(v))
            else:  # an id: not inside a longer id
                out.append(f"(^|[^A-Za-z0-9]){re.escape(v)}([^A-Za-z0-9]|$)")
    return out


# ---- scanning everything --------------------------------------------------------------------------------------


def warehouse_traces(patterns: list[str]) -> dict[str, int]:
    """Rows of every table of the warehouse database whose text (every column, JSON included) matches."""
    found = {}
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        tables = conn.execute("select table_schema, table_name from information_schema.tables where table_type = "
                              "'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')").fetchall()
        for schema, name in tables:
            (n,) = conn.execute(sql.SQL("select count(*) from {} t where t::text ~* any(%s)").format(
                sql.Identifier(schema, name)), (patterns,)).fetchone()
            if n:
                found[f"{schema}.{name}"] = n
    return found


def lake_traces(patterns: list[str], skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Files of the lake (all of it) holding a match: Parquet by its values and by its bytes, the rest as text."""
    regex = re.compile("|".join(f"(?:{p})" for p in patterns), re.I)
    root = lake.local_path(settings.lake_uri())
    found = {}
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = str(f.relative_to(root))
        if rel.startswith(skip):
            continue
        raw = f.read_bytes()
        texts = [raw.decode("utf-8", errors="replace")]
        if f.name.endswith(".parquet"):
            texts.append(json.dumps(pq.read_table(f).to_pylist(), default=str))
        hits = sum(len(regex.findall(t)) for t in texts)
        if hits:
            found[rel] = hits
    return found


def _counts() -> dict[str, int]:
    tables = [e.table for e in load_registry().published()]
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        return {t: conn.execute(sql.SQL("select count(*) from {}").format(ident(t))).fetchone()[0] for t in tables}


def _theirs(idents: dict[str, set[str]]) -> dict[str, int]:
    """The person's rows per published table, counted here independently of c360.erasure."""
    ids, visitors, orders = (sorted(idents[k]) for k in ("customer_ids", "visitor_ids", "order_ids"))
    queries = {
        "c360.customer": ("customer_id = any(%(ids)s)",),
        "c360.orders": ("customer_id = any(%(ids)s)",),
        "c360.order_line_item": ("order_id = any(%(orders)s)",),
        "c360.transactions": ("order_id = any(%(orders)s)",),
        "c360.web_activity": ("entity_id = any(%(ids)s) or split_part(session_id, '-', 1) = any(%(visitors)s)",),
        "c360.orders_enriched": ("customer_id = any(%(ids)s) or order_id = any(%(orders)s)",),
        "c360.rfm_history": ("customer_id = any(%(ids)s)",),
        "c360.segment_membership_history": ("customer_id = any(%(ids)s)",),
        "c360.customer_profile": ("customer_ids ?| %(ids)s::text[]",),
    }
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        return {t: conn.execute(sql.SQL("select count(*) from {} where " + q).format(ident(t)),
                                {"ids": ids, "visitors": visitors, "orders": orders}).fetchone()[0]
                for t, (q,) in queries.items()}


# ---- the platform, loaded --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded(fresh_warehouse, dagbag):
    data = generator.generate(SCALE)
    person = _pick_and_plant(data)
    reset_erasure_state()
    generator.load_sources(data)
    generator.write_landing(data)
    from croniter import croniter

    for dag_id in DATASET_DAGS:
        # the first run of each loads its whole history, up to its first interval end at or after END (web
        # analytics: GA_HOUR)
        schedule = next(ds.cadence.schedule for ds in load_registry().active() if ds.dag_id == dag_id)
        first = croniter(schedule, END.replace(tzinfo=None) - timedelta(seconds=1)).get_next(datetime)
        _run(dagbag, dag_id, first.replace(tzinfo=UTC))
    _run(dagbag, "customer_360_daily", END)
    _run(dagbag, "customer_360_daily", END - timedelta(days=1))  # a second as-of partition of the history
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:  # batches a blocked run would leave for inspection
        conn.execute("create table staging.customer_daily__20261101t0000 as select * from c360.customer")
        conn.execute("create table staging.orders_every_15_minutes__20261101t0000 as select * from c360.orders")
        conn.execute("create table staging.customer_360_customer_profile__20261101t0000 as "
                     "select * from c360.customer_profile")
    idents = _identifiers(person)
    return person, idents


@pytest.fixture(scope="module")
def erased(loaded, dagbag):
    person, idents = loaded
    before, theirs = _counts(), _theirs(idents)
    dr = _run(dagbag, "gdpr_erasure", datetime.now(UTC), customer_id=person["twin"])
    return person, idents, before, theirs, dr


def test_the_person_is_everywhere_before(loaded):
    """The data the test erases from: the scan finds the person in every layer and the expected tables."""
    person, idents = loaded
    assert len(idents["order_ids"]) >= 2 and VISITOR in idents["visitor_ids"] and len(idents["phones"]) >= 3
    theirs = _theirs(idents)
    assert all(n > 0 for n in theirs.values()), theirs
    assert theirs["c360.customer"] == 2 and theirs["c360.customer_profile"] == 1  # two ids, one person
    patterns = _patterns(idents)
    tables = warehouse_traces(patterns)
    assert set(theirs) | {"staging.customer_daily__20261101t0000", "staging.orders_every_15_minutes__20261101t0000",
                          "staging.customer_360_customer_profile__20261101t0000"} <= set(tables)
    layers = {f.split("/")[0] + "/" + f.split("/")[1] for f in lake_traces(patterns)}
    assert {"raw/customer", "stage/customer", "quarantine/customer", "raw/orders", "stage/orders",
            "raw/order_line_item", "raw/transactions", "raw/web_analytics", "stage/web_analytics",
            "quarantine/web_analytics", "analytics/customer_360", "landing/web_analytics"} <= layers


def test_no_trace_is_left_in_any_table_or_lake_file(erased):
    person, idents, *_ = erased
    patterns = _patterns(idents)
    assert warehouse_traces(patterns) == {}
    assert lake_traces(patterns) == {}


def test_every_table_lost_exactly_the_persons_rows(erased):
    _, idents, before, theirs, _ = erased
    after = _counts()
    assert {t: before[t] - after[t] for t in before if before[t] != after[t]} == {
        t: n for t, n in theirs.items() if n}
    assert all(after[t] > 0 for t in after)  # everyone else is still there
    # every as-of partition of the history lost the person's rows, none went
    assert wh("select count(distinct as_of_date) from c360.rfm_history")[0][0] == 2


def test_the_request_and_the_audit_trail_keep_counts_and_a_hash_only(erased):
    person, idents, _, theirs, dr = erased
    ((rid, status, cid, identifiers, subject_hash, counts),) = wh(
        "select id, status, customer_id, identifiers, subject_hash, counts from governance.erasure_requests")
    assert (status, cid, identifiers) == ("done", None, None) and re.fullmatch(r"[0-9a-f]{64}", subject_hash)
    assert counts["identifiers"]["customer_ids"] == 2 and counts["warehouse"]["c360.orders"] == theirs["c360.orders"]
    # request ids restart with the module's fresh request table; the audit trail is append-only and keeps the
    # entries of other modules' requests of the same id: this run's are the ones of its DAG run
    entries = wh("select subject, rows, detail, dag_id, dag_run_id from governance.audit_log where action = "
                  "'erasure' and detail->>'request' = %s and dag_run_id = %s", (str(rid), dr.run_id))
    by_subject = {s: r for s, r, *_ in entries}
    for table, n in theirs.items():
        assert by_subject[table] == n, table
    assert by_subject["staging.customer_daily__20261101t0000"] == 2
    assert {"lake:raw/customer", "lake:quarantine/customer", "lake:raw/web_analytics",
            "lake:quarantine/web_analytics", "lake:landing/web_analytics"} <= set(by_subject)
    assert by_subject[f"erasure_request:{rid}"] == sum(r for s, r in by_subject.items()
                                                       if not s.startswith("erasure_request:"))
    assert all(d["subject_hash"] == subject_hash and dag == "gdpr_erasure" and run == dr.run_id
               for _, _, d, dag, run in entries)
    # the suppression list holds hashes of both customer ids and the visitor ids
    kinds = dict(wh("select kind, count(*) from governance.erasure_suppression group by kind"))
    assert kinds == {"customer_id": 2, "visitor_id": len(idents["visitor_ids"])}


def test_the_audit_entries_cannot_be_changed(erased):
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute("drop role if exists c360_erasure_test_other; create role c360_erasure_test_other")
        conn.execute("grant usage on schema governance to c360_erasure_test_other")
    for statement in ("update governance.audit_log set rows = 0 where action = 'erasure'",
                      "delete from governance.audit_log where action = 'erasure'"):
        with pg.connect(settings.WAREHOUSE_CONN_ID) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("set role c360_erasure_test_other")  # another role: no privilege on it at all
            conn.execute(statement)
        with pg.connect(settings.WAREHOUSE_CONN_ID) as conn, pytest.raises(
                psycopg.errors.RaiseException, match="append-only"):
            conn.execute(statement)  # its owner: the append-only trigger refuses
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute("revoke all on schema governance from c360_erasure_test_other; drop role c360_erasure_test_other")


def test_a_full_refresh_and_backfills_never_bring_the_person_back(erased, dagbag):
    person, idents, before, theirs, _ = erased
    patterns = _patterns(idents)
    expected = _counts()
    _run(dagbag, "customer_daily", END, full_refresh=True)
    # an old interval of the person's orders, their line items and payments, replayed
    with pg.connect(settings.OLTP_CONN_ID) as conn:
        order_id, order_date = conn.execute("select order_id, order_date from orders where customer_id = any(%s) "
                                            "order by order_date limit 1", (sorted(idents["customer_ids"]),)).fetchone()
        (item_at,) = conn.execute("select max(created_at) from order_line_item where order_id = %s",
                                  (order_id,)).fetchone()
        (paid_at,) = conn.execute("select min(transaction_ts) from transactions where order_id = %s",
                                  (order_id,)).fetchone()
    quarter = lambda t: (t.replace(minute=t.minute // 15 * 15, second=0, microsecond=0)  # noqa: E731
                         + timedelta(minutes=15)).replace(tzinfo=UTC)
    assert order_date < END.replace(tzinfo=None) - timedelta(days=1)  # an old interval
    end = quarter(order_date)
    _run(dagbag, "orders_every_15_minutes", end)
    _run(dagbag, "order_line_item_every_15_minutes", quarter(item_at))
    _run(dagbag, "transactions_daily", (paid_at.replace(hour=1, minute=0, second=0, microsecond=0)
                                        + timedelta(days=1 if paid_at.hour >= 1 else 0)).replace(tzinfo=UTC))
    # the backfill's raw partition holds the interval's source rows but the person's
    start = end - timedelta(minutes=15)
    with pg.connect(settings.OLTP_CONN_ID) as conn:
        in_source, of_person = conn.execute(
            "select count(*), count(*) filter (where customer_id = any(%s)) from orders "
            "where order_date >= %s and order_date < %s",
            (sorted(idents["customer_ids"]), start.replace(tzinfo=None), end.replace(tzinfo=None))).fetchone()
    raw = pq.read_table(lake.local_path(lake.uri("raw", "orders", start)))
    assert of_person >= 1 and order_id not in raw["order_id"].to_pylist()
    assert raw.num_rows == in_source - of_person
    assert _counts() == expected
    assert warehouse_traces(patterns) == {}
    assert lake_traces(patterns) == {}


def test_a_redelivered_ga_export_and_a_customer_360_rerun_stay_clean(erased, dagbag, loaded):
    """The GA export of the person's hour lands again (upstream re-delivers it, person included): the rerun of
    web analytics leaves their lines out; Customer 360 rebuilt from the published tables has no profile of them."""
    person, idents, *_ = erased
    patterns = _patterns(idents)
    landing = lake.path(f"{settings.landing_uri()}/web_analytics/{person['ga_file']}")
    erased_file = landing.read_bytes()
    data = generator.generate(SCALE)
    original = _pick_and_plant(data)
    assert original == person
    landing.write_bytes(data.ga_files[person["ga_file"]])  # the person's sessions are back in the landing zone
    try:
        _run(dagbag, "web_analytics_hourly", END)
        assert lake_traces(patterns, skip=("landing/",)) == {}
    finally:
        landing.write_bytes(erased_file)
    profiles = wh("select count(*) from c360.customer_profile")[0][0]
    _run(dagbag, "customer_360_daily", END)
    assert wh("select count(*) from c360.customer_profile")[0][0] == profiles
    assert warehouse_traces(patterns) == {}
    assert lake_traces(patterns) == {}
