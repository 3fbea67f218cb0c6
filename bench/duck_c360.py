"""DuckDB reference for the Customer 360 job: the job's four outputs as of an instant, in DuckDB SQL.

    python bench/duck_c360.py --inputs '{"customer": "...", ...}' --as-of 2026-11-21T00:00:00 --out DIR

Reads the inputs the job reads (``include/spark/customer360_job.py``'s ``--inputs``: Parquet folders for
customer, product, brand, orders, order_line_item, transactions and web_analytics, a CSV folder for the
visitor map; an absent or file-less web_analytics is an input with no rows) and writes ``orders_enriched``,
``rfm``, ``segment_membership`` and ``customer_profile`` as Parquet folders under ``--out``: the job's
columns and types, computed from the definitions of the job's module docstring and functions, not from its
code path (one pass over the purchases for every per-customer aggregate, the quintile scores as SQL
``RANK()``, connected components by min-label propagation over the keys two or more customers share, driven
from Python until no label changes). The segment rules come from the spec (``c360.segments``), not from
this file. ``bench/customer360.py`` runs it in a child process (``duckdb_t1``) and compares the outputs with
the job's row for row; the child prints its peak RSS (VmHWM) and the outputs' row counts as JSON.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "bench")]

OUTPUTS = ("orders_enriched", "rfm", "segment_membership", "customer_profile")
MONEY = "decimal(18,2)"
ORDER_METRIC_KINDS = ("order_value", "order_count")
# the web analytics columns the outputs read: the view of an absent input
WEB_COLUMNS = {"session_id": "varchar", "entity_id": "varchar", "activity_ts": "timestamp",
               "event_action": "varchar", "traffic_channel": "varchar"}

MACROS = [
    # double → decimal(18,2) as Spark casts it: the shortest decimal that gives the double back, rounded
    # half up (DuckDB's own cast rounds the binary value: 1.005 would become 1.00, Spark makes it 1.01); a
    # double that is already a two-decimal value takes the fast path
    f"create macro money(x) as case when x = round(x, 2) then cast(x as {MONEY}) "
    f"else cast(cast(x as varchar) as {MONEY}) end",
    # the job's normalised email (trimmed of spaces, lower case, with an @) and phone (its last 10 digits)
    "create macro norm_email(x) as case when contains(lower(trim(x, ' ')), '@') then lower(trim(x, ' ')) end",
    "create macro norm_phone(x) as case when length(regexp_replace(x, '[^0-9]', '', 'g')) >= 7 "
    "then right(regexp_replace(x, '[^0-9]', '', 'g'), 10) end",
    # a value as JSON text (SQL NULL: null)
    "create macro jv(x) as coalesce(cast(to_json(x) as varchar), 'null')",
    # a decimal(18,2) as Java's Double.toString writes its double (Spark's to_json of a double): plain below
    # 10^7 with at least one decimal ("100.0", "1180.8"), d.dddE<n> from 10^7; exact up to 15 significant
    # digits (a spend of 10^13), where the decimal's digits are the double's shortest
    "create macro java_plain(s) as case when contains(s, '.') then s else s || '.0' end",
    "create macro java_sci(neg, digits, intlen) as (case when neg then '-' else '' end) || digits[1] || '.' "
    "|| coalesce(nullif(substr(digits, 2), ''), '0') || 'E' || cast(intlen - 1 as varchar)",
    "create macro java_double(d) as case when d is null then 'null' "
    "when abs(d) < 10000000 then java_plain(regexp_replace(cast(d as varchar), '\\.?0+$', '')) "
    "else java_sci(d < 0, rtrim(cast(cast(abs(cast(d as decimal(38,2))) * 100 as hugeint) as varchar), '0'), "
    "length(cast(cast(trunc(abs(d)) as hugeint) as varchar))) end",
]


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ts(value: datetime) -> str:
    return f"timestamp '{value.isoformat(sep=' ')}'"


def _files(uri: str | None) -> list[str]:
    """The data files of an input folder as Spark lists them (no name or folder starting with _ or .)."""
    if not uri:
        return []
    path = Path(uri.removeprefix("file://"))
    if path.is_file():
        return [str(path)]
    return sorted(str(f) for f in path.rglob("*") if f.is_file()
                  and not any(part.startswith(("_", ".")) for part in f.relative_to(path).parts))


def _list(files: list[str]) -> str:
    return "[" + ", ".join(_lit(f) for f in files) + "]"


def connect(threads: int | None = None, memory_limit: str = "12GB", temp_dir: Path | None = None):
    """A DuckDB connection on every core with a memory limit, spilling to ``temp_dir``."""
    import duckdb

    con = duckdb.connect()
    con.execute("set timezone = 'UTC'")
    con.execute(f"set threads = {int(threads or os.cpu_count() or 1)}")
    con.execute(f"set memory_limit = {_lit(memory_limit)}")
    con.execute("set preserve_insertion_order = false")  # the outputs are sets of rows, as the job's
    if temp_dir is not None:
        Path(temp_dir).mkdir(parents=True, exist_ok=True)
        con.execute(f"set temp_directory = {_lit(str(temp_dir))}")
    return con


def _views(con, inputs: dict[str, str]) -> None:
    for name in ("customer", "product", "brand", "orders", "order_line_item", "transactions"):
        files = _files(inputs[name])
        if not files:
            raise SystemExit(f"bench/duck_c360.py: input {name} has no files at {inputs[name]}")
        con.execute(f"create view {name} as select * from read_parquet({_list(files)})")
    web = _files(inputs.get("web_analytics"))
    if web:
        con.execute(f"create view web as select {', '.join(WEB_COLUMNS)} from read_parquet({_list(web)})")
    else:  # web analytics disabled or never published: no sessions
        cols = ", ".join(f"cast(null as {t}) as {c}" for c, t in WEB_COLUMNS.items())
        con.execute(f"create view web as select {cols} where false")
    # the job reads the CSV with its schema by position (the header line skipped), blank fields as NULL
    con.execute(
        "create view vmap as select distinct fullVisitorId, customer_id from read_csv("
        f"{_list(_files(inputs['visitor_map']))}, header = true, auto_detect = false, delim = ',', quote = '\"', "
        "escape = '\\', null_padding = true, columns = {'fullVisitorId': 'varchar', 'customer_id': 'varchar'}) "
        "where fullVisitorId is not null and customer_id is not null")


def _rfm_segment_case(rules: list[dict]) -> str:
    """The RFM segment of (r_score, f_score, m_score): the first rule of the spec whose ranges hold."""
    whens = []
    for rule in rules:
        cond = " and ".join(f"{axis}_score between {int(rule[axis][0])} and {int(rule[axis][1])}"
                            for axis in ("r", "f", "m"))
        whens.append(f"when {cond} then {_lit(rule['name'])}")
    return f"case {' '.join(whens)} end"


def statements(as_of: datetime, spec: dict) -> dict[str, str]:
    """The SQL of the per-customer tables and the outputs, in order (name → statement)."""
    excluded = spec["rfm"].get("excluded_statuses", [])
    metrics = spec["metrics"]
    at = _ts(as_of)
    day = f"date '{as_of.date().isoformat()}'"

    def start(days: int) -> str:  # the first instant of a window of ``days`` days before the as-of
        return _ts(as_of - timedelta(days=days))

    status_ok = (f"(order_status is null or order_status not in ({', '.join(_lit(s) for s in excluded)}))"
                 if excluded else "true")
    order_metrics = {k: m for k, m in metrics.items() if m["kind"] in ORDER_METRIC_KINDS}
    item_metrics = {k: m for k, m in metrics.items() if m["kind"] == "items_in_categories"}
    # the job's order aggregates are over the purchases in the widest of the RFM and order-metric windows:
    # a customer with none there has no order metrics (a count is then NULL, not 0)
    widest = max([spec["rfm"]["window_days"], *[m["window_days"] for m in order_metrics.values()]])
    metric_cols = []
    for name, m in order_metrics.items():
        inside = f"filter (where order_date >= {start(m['window_days'])})"
        value = (f"sum(amount) {inside}" if m["kind"] == "order_value"
                 else f"case when max(order_date) >= {start(widest)} then count(*) {inside} end")
        metric_cols.append(f"cast({value} as double) as {_ident('m_' + name)}")
    item_cols = [f"cast(sum(coalesce(qty, 0)) filter (where order_date >= {start(m['window_days'])}) as bigint) "
                 f"as {_ident('i_' + name)}" for name, m in item_metrics.items()]

    def metric_source(name: str, m: dict) -> str:
        """customer_id, value (NULL: no value) of one audience metric."""
        if m["kind"] in ORDER_METRIC_KINDS:
            return f"select customer_id, {_ident('m_' + name)} as value from cust"
        if m["kind"] == "items_in_categories":
            cats = ", ".join(_lit(c) for c in m["categories"])
            return (f"select customer_id, cast(sum({_ident('i_' + name)}) filter (where product_category in "
                    f"({cats}) or product_subcategory in ({cats})) as double) as value from cust_cat group by 1")
        if m["kind"] == "abandoned_cart_sessions":
            return (
                "select entity_id as customer_id, cast(count(*) as double) as value from ("
                "select entity_id, session_id, max(cast(event_action = 'add_to_cart' as int)) as carted, "
                "max(cast(event_action = 'order_placed' as int)) as ordered from web "
                f"where activity_ts < {at} and activity_ts >= {start(m['window_days'])} and entity_id is not null "
                "group by entity_id, session_id) where carted = 1 and ordered = 0 group by entity_id")
        raise ValueError(f"unknown metric kind {m['kind']!r} for {name}")

    audiences = [
        f"select {_lit(a['name'])} as segment_name, customer_id, 'audience' as segment_type "
        f"from ({metric_source(a['metric'], metrics[a['metric']])}) "
        f"where value >= cast({_lit(repr(float(a['at_least'])))} as double)"
        for a in spec["audiences"]]
    rfm_start = start(spec["rfm"]["window_days"])
    profile_doc = (
        "'{\"customerId\":' || jv(profile_id) "
        "|| ',\"identities\":' || jv({'email': emails, 'phone': phones, 'deviceIds': device_list, "
        "'customerIds': customer_ids}) "
        "|| ',\"demographics\":' || jv({'firstName': first_name, 'lastName': last_name, 'age': age, "
        "'gender': gender, 'location': {'city': city, 'state': state, 'country': country}}) "
        "|| ',\"transactions\":{\"totalPurchases\":' || cast(coalesce(total_purchases, 0) as varchar) "
        "|| ',\"totalSpend\":' || java_double(coalesce(total_spend, 0)) "
        "|| ',\"avgOrderValue\":' || java_double(avg_order_value) "
        "|| ',\"lastPurchase\":' || jv(cast(last_purchase as varchar)) "
        "|| ',\"favoriteCategories\":' || jv(fav_list) || '}' "
        "|| ',\"engagement\":' || jv({'rfmScore': case when r_score is not null then "
        "{'recency': r_score, 'frequency': f_score, 'monetary': m_score} end, 'engagementScore': engagement_score, "
        "'preferredChannel': preferred_channel, 'lastInteraction': cast(last_interaction as varchar)}) "
        "|| ',\"consent\":' || jv({'marketing': consent_marketing, 'analytics': consent_analytics, "
        "'thirdParty': consent_third_party}) || '}'")
    return {
        # purchases: placed before the as-of, not in an excluded status, of a customer
        "purch": f"create temp table purch as select order_id, customer_id, order_date, money(total_amount) as amount "
                 f"from orders where order_date < {at} and customer_id is not null and {status_ok}",
        # per customer with a purchase ever: the profile's summary, the RFM aggregates, the order metrics.
        # order_id is the orders' key: rows are distinct purchases
        "cust": (
            "create temp table cust as select customer_id, cast(count(*) as int) as purchases, "
            f"cast(sum(amount) as {MONEY}) as spend, max(order_date) as last_purchase_ts, "
            f"max(order_date) filter (where order_date >= {rfm_start}) as rfm_last_ts, "
            f"cast(count(*) filter (where order_date >= {rfm_start}) as int) as rfm_frequency, "
            f"cast(sum(amount) filter (where order_date >= {rfm_start}) as {MONEY}) as rfm_monetary"
            + "".join(", " + c for c in metric_cols) + " from purch group by customer_id"),
        # per customer × category × subcategory of the purchases' lines (lines of unknown products left out):
        # the quantity ever (the favourites) and in each item metric's window
        "cust_cat": (
            "create temp table cust_cat as select p.customer_id, pr.product_category, pr.product_subcategory, "
            "cast(sum(i.qty) as bigint) as q" + "".join(", " + c for c in item_cols)
            + " from purch p join order_line_item i on i.order_id = p.order_id "
              "join product pr on pr.product_id = i.product_id group by all"),
        # recency, frequency, monetary of the RFM window; quintile scores 1 + floor(5 (rank - 1) / n) by RANK()
        "rfm": (
            f"create temp table rfm as select {day} as as_of_date, customer_id, last_order_date, recency_days, "
            "frequency, monetary, r_score, f_score, m_score, "
            "cast(r_score as varchar) || cast(f_score as varchar) || cast(m_score as varchar) as rfm_score, "
            f"{_rfm_segment_case(spec['rfm_segments'])} as rfm_segment from ("
            "select *, cast(1 + (5 * (rank() over (order by -recency_days) - 1)) // n as int) as r_score, "
            "cast(1 + (5 * (rank() over (order by frequency) - 1)) // n as int) as f_score, "
            "cast(1 + (5 * (rank() over (order by monetary) - 1)) // n as int) as m_score from ("
            "select customer_id, cast(rfm_last_ts as date) as last_order_date, "
            f"cast(date_diff('day', cast(rfm_last_ts as date), {day}) as int) as recency_days, "
            f"rfm_frequency as frequency, cast(coalesce(rfm_monetary, 0) as {MONEY}) as monetary, "
            "count(*) over () as n from cust where rfm_frequency > 0))"),
        "orders_enriched": (
            "with pay as (select order_id, "
            f"cast(sum(case when amount > 0 then money(amount) else 0 end) as {MONEY}) as paid_amount, "
            f"cast(sum(case when amount < 0 then -money(amount) else 0 end) as {MONEY}) as refunded_amount "
            "from transactions group by order_id) "
            "select o.order_id, i.order_li_id, o.customer_id, o.order_date, o.order_status, o.payment_method, "
            "i.product_id, p.product_name, p.product_category, p.product_subcategory, p.brand_id, b.brand_name, "
            f"b.parent_company, i.qty, money(p.sale_price) as unit_price, "
            f"cast(i.qty * money(p.sale_price) as {MONEY}) as line_amount, "
            "money(o.total_amount) as order_total_amount, money(o.discounted_amount) as discounted_amount, "
            "money(o.shipping_amount) as shipping_amount, o.transaction_id, "
            f"coalesce(pay.paid_amount, cast(0 as {MONEY})) as paid_amount, "
            f"coalesce(pay.refunded_amount, cast(0 as {MONEY})) as refunded_amount "
            f"from orders o left join order_line_item i on i.order_id = o.order_id "
            "left join product p on p.product_id = i.product_id left join brand b on b.brand_id = p.brand_id "
            f"left join pay on pay.order_id = o.order_id where o.order_date < {at}"),
        "rfm_out": "select * from rfm",
        "segment_membership": (
            f"select {day} as as_of_date, segment_name, customer_id, segment_type from ("
            + " union all ".join([*audiences, "select rfm_segment as segment_name, customer_id, 'rfm' as segment_type from rfm"]) + ")"),
        "customer_profile": f"""
            with members as (select c.*, i.profile_id from customer c join ids i using (customer_id)),
            survivor as (
                select profile_id, first_name, last_name, age, gender, city, state, country from members
                qualify row_number() over (partition by profile_id order by updated_at desc nulls last,
                                           customer_id) = 1),
            identity as (
                select profile_id, list_sort(list_distinct(list(customer_id))) as customer_ids,
                       list_sort(list_distinct(list(norm_email(email_address)))) as emails,
                       list_sort(list_distinct(list(norm_phone(phone_number)))) as phones,
                       bool_and(coalesce(consent_marketing, false)) as consent_marketing,
                       bool_and(coalesce(consent_analytics, false)) as consent_analytics,
                       bool_and(coalesce(consent_third_party, false)) as consent_third_party
                from members group by profile_id),
            devices as (
                select i.profile_id, list_sort(list_distinct(list(v.fullVisitorId))) as device_ids
                from vmap v join ids i using (customer_id) group by i.profile_id),
            per_profile as (
                select *, case when total_spend is not null then cast(cast(
                           sign(cents) * ((abs(cents) * 2 + total_purchases) // (2 * total_purchases))
                           as {MONEY}) * 0.01 as {MONEY}) end as avg_order_value  -- spend / purchases, half up
                from (select i.profile_id, cast(sum(c.purchases) as int) as total_purchases,
                             cast(sum(c.spend) as {MONEY}) as total_spend,
                             cast(cast(sum(c.spend) as decimal(38,2)) * 100 as hugeint) as cents,
                             cast(max(c.last_purchase_ts) as date) as last_purchase
                      from cust c join ids i using (customer_id) group by i.profile_id)),
            favourites as (
                select profile_id, list(product_category order by rn) as favorite_categories from (
                    select profile_id, product_category, row_number() over (partition by profile_id
                           order by q desc nulls last, product_category asc nulls first) as rn
                    from (select i.profile_id, c.product_category, sum(c.q) as q
                          from cust_cat c join ids i using (customer_id) group by all))
                where rn <= 2 group by profile_id),
            best_rfm as (
                select i.profile_id, r.r_score, r.f_score, r.m_score, r.rfm_segment
                from rfm r join ids i using (customer_id)
                qualify row_number() over (partition by i.profile_id
                        order by r.r_score + r.f_score + r.m_score desc, r.customer_id) = 1),
            seen as (
                select i.profile_id, w.session_id, w.activity_ts, w.traffic_channel
                from web w join ids i on i.customer_id = w.entity_id where w.activity_ts < {at}),
            recent as (select * from seen where activity_ts >= {start(90)}),
            web_last as (select profile_id, cast(max(activity_ts) as date) as last_web from seen group by 1),
            sessions_30 as (
                select profile_id, count(distinct session_id) as sessions_30d from recent
                where activity_ts >= {start(30)} group by 1),
            preferred as (
                select profile_id, traffic_channel as preferred_channel from (
                    select profile_id, traffic_channel, count(*) as n
                    from (select distinct profile_id, session_id, traffic_channel from recent) group by all)
                qualify row_number() over (partition by profile_id order by n desc, traffic_channel asc nulls first) = 1),
            p as (
                select *, cast(round(cast(100 as double) * (cast('0.6' as double)
                              * (cast(coalesce(r_score + f_score + m_score, 3) - 3 as double) / cast('12' as double))
                              + cast('0.4' as double)
                              * (cast(least(coalesce(sessions_30d, 0), 10) as double) / cast('10' as double))))
                          as int) as engagement_score,
                       greatest(last_purchase, last_web) as last_interaction,
                       coalesce(device_ids, cast([] as varchar[])) as device_list,
                       coalesce(favorite_categories, cast([] as varchar[])) as fav_list
                from survivor join identity using (profile_id) left join devices using (profile_id)
                left join per_profile using (profile_id) left join favourites using (profile_id)
                left join best_rfm using (profile_id) left join web_last using (profile_id)
                left join sessions_30 using (profile_id) left join preferred using (profile_id))
            select profile_id, {day} as as_of_date, cast(to_json(customer_ids) as varchar) as customer_ids,
                   cast(to_json(emails) as varchar) as emails, cast(to_json(phones) as varchar) as phones,
                   cast(to_json(device_list) as varchar) as device_ids, first_name, last_name, age, gender, city,
                   state, country, coalesce(total_purchases, 0) as total_purchases,
                   coalesce(total_spend, cast(0 as {MONEY})) as total_spend, avg_order_value, last_purchase,
                   cast(to_json(fav_list) as varchar) as favorite_categories, r_score, f_score, m_score,
                   rfm_segment, engagement_score, preferred_channel, last_interaction, consent_marketing,
                   consent_analytics, consent_third_party, {profile_doc} as profile
            from p""",
    }


def resolve_identities(con, max_iterations: int = 10_000) -> int:
    """Table ``ids`` (customer_id, profile_id): the smallest customer_id of each customer's connected
    component over shared normalised emails, phones and visitor ids, by min-label propagation over the keys
    two or more customers share (a customer without one is its own person). Returns the iterations.

    ``ids`` has one row per customer *record*, as the job's has (its labels start from every row of the
    customer table, which may hold a stale second record of an id): a customer_id with two records has two
    rows, so the profile's purchases, spend and category quantities count that customer's orders twice.
    That is the job's behaviour, not its docstring's definition (an order belongs to one customer); it is
    reproduced here so that the outputs compare equal: one row per customer_id changes those profiles."""
    con.execute("""
        create temp table keys as select distinct k.customer_id, k.k from (
            select customer_id, 'e:' || norm_email(email_address) as k from customer
            union all select customer_id, 'p:' || norm_phone(phone_number) from customer
            union all select customer_id, 'v:' || fullVisitorId from vmap) k
        where k.k is not null and k.customer_id in (select customer_id from customer)""")
    con.execute("create temp table edges as select customer_id, k from keys "
                "where k in (select k from keys group by k having count(*) > 1)")
    con.execute("create temp table labels as select distinct customer_id, customer_id as label from edges")
    iteration = 0
    while iteration < max_iterations:
        iteration += 1
        # each customer takes the smallest label among the customers sharing a key with it (itself included)
        con.execute("""
            create or replace temp table labels_next as
            with key_min as (select e.k, min(l.label) as label from edges e join labels l using (customer_id)
                             group by e.k)
            select e.customer_id, min(m.label) as label from edges e join key_min m using (k)
            group by e.customer_id""")
        changed = con.execute("select count(*) from labels_next n join labels l using (customer_id) "
                              "where n.label <> l.label").fetchone()[0]
        con.execute("drop table labels")
        con.execute("alter table labels_next rename to labels")
        if changed == 0:
            break
    if changed:
        raise RuntimeError(f"identity resolution did not converge in {max_iterations} iterations")
    con.execute("create temp table ids as select c.customer_id, coalesce(l.label, c.customer_id) as profile_id "
                "from customer c left join labels l using (customer_id) where c.customer_id is not null")
    return iteration


def run(inputs: dict[str, str], as_of: datetime, spec: dict, out: Path, *, threads: int | None = None,
        memory_limit: str = "12GB", temp_dir: Path | None = None) -> dict:
    """Every output as of ``as_of`` into ``out/<name>/part-00000.parquet``; returns the row counts and the
    identity iterations."""
    import shutil

    con = connect(threads, memory_limit, temp_dir)
    _views(con, inputs)
    for macro in MACROS:
        con.execute(macro)
    sql = statements(as_of, spec)
    timings: dict[str, float] = {}

    def timed(label: str, fn):
        t = time.perf_counter()
        result = fn()
        timings[label] = round(time.perf_counter() - t, 2)
        return result

    for name in ("purch", "cust", "cust_cat", "rfm"):
        timed(name, lambda name=name: con.execute(sql[name]))
    iterations = timed("identities", lambda: resolve_identities(con))
    counts: dict = {}
    for name in OUTPUTS:
        folder = Path(out) / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        query = sql["rfm_out" if name == "rfm" else name]
        counts[name] = timed(name, lambda query=query, folder=folder: con.execute(
            f"copy ({query}) to {_lit(str(folder / 'part-00000.parquet'))} (format parquet)").fetchone()[0])
    con.close()
    return {**counts, "identity_iterations": iterations, "step_s": timings}


def compare(expected: Path, got: Path, names: tuple[str, ...] = OUTPUTS, memory_limit: str = "8GB",
            temp_dir: Path | None = None, samples: int = 0) -> dict[str, int]:
    """Rows differing between two runs' outputs (``<run>/<name>/*.parquet``), per output: rows of one not in
    the other, both ways, counted with multiplicity (Spark's ``exceptAll`` both ways). Every column takes part,
    the profile JSON as its text (byte for byte). The rows are matched by a 64-bit hash of all their columns
    (the multiset of hashes with counts, both sides): a hash join on the whole row would hold every row of
    the 50M-row enriched orders in memory; two different rows sharing a hash (odds ~ rows² / 2⁶⁴) could hide
    a difference. Columns must be the same (names and types, in order), else SystemExit. ``samples``: print
    that many differing rows of each side to stderr."""
    con = connect(memory_limit=memory_limit, temp_dir=temp_dir)
    differ = {}
    for name in names:
        rels = [f"read_parquet({_lit(str(Path(run) / name / '*.parquet'))})" for run in (expected, got)]
        schemas = [con.execute(f"describe select * from {r}").fetchall() for r in rels]
        cols = [(c[0], c[1]) for c in schemas[0]]
        if cols != [(c[0], c[1]) for c in schemas[1]]:
            raise SystemExit(f"{name}: the columns differ: {cols} vs {[(c[0], c[1]) for c in schemas[1]]}")
        row = ", ".join(_ident(c) for c, _ in cols)
        hashed = [f"(select hash({row}) as h, count(*) as n from {r} group by 1)" for r in rels]
        differ[name] = int(con.execute(
            f"select coalesce(sum(abs(coalesce(a.n, 0) - coalesce(b.n, 0))), 0) from {hashed[0]} a "
            f"full join {hashed[1]} b using (h)").fetchone()[0])
        if differ[name] and samples:
            for label, (this, other) in (("only in " + str(expected), rels), ("only in " + str(got), rels[::-1])):
                rows = con.execute(f"select * from (select {row} from {this} except all select {row} from {other}) "
                                   f"limit {int(samples)}").fetchall()
                print(f"{name}: {label}: {rows}", file=sys.stderr)
    con.close()
    return differ


def _vm_hwm_self() -> int | None:
    from stage import _vm_hwm_mb

    return _vm_hwm_mb(os.getpid())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", required=True, help="JSON: input name → folder (the job's --inputs, decoded)")
    parser.add_argument("--as-of", required=True, help="ISO timestamp: outputs as of this instant (exclusive)")
    parser.add_argument("--spec", help="base64 JSON of the segments spec (default: include/c360/segments.yaml)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--memory-limit", default="12GB")
    parser.add_argument("--temp-dir", help="where DuckDB spills (default: <out>/_duckdb_tmp)")
    args = parser.parse_args(argv)
    if args.spec:
        spec = json.loads(base64.b64decode(args.spec))
    else:
        from c360.segments import load_segments

        spec = load_segments().spec()
    as_of = datetime.fromisoformat(args.as_of).replace(tzinfo=None)
    out = Path(args.out)
    t = time.perf_counter()
    result = run(json.loads(args.inputs), as_of, spec, out, threads=args.threads, memory_limit=args.memory_limit,
                 temp_dir=Path(args.temp_dir) if args.temp_dir else out / "_duckdb_tmp")
    print(json.dumps({"seconds": round(time.perf_counter() - t, 2), "peak_mb": _vm_hwm_self(), **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
