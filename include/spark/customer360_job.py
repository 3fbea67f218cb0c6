"""Spark job: the Customer 360 outputs as of a date, from snapshots of the published tables.

Outputs (one Parquet folder each under ``--out``):

* ``orders_enriched`` — one row per order line: the order, its product and brand, and its payments.
* ``rfm`` — per customer with at least one purchase in the window: recency, frequency, monetary, R/F/M
  scores 1–5 by quintiles, the RFM score and the RFM segment.
* ``segment_membership`` — (segment_name, customer_id, segment_type): the seed 002 audiences whose rules
  (``include/c360/segments.yaml``) a customer meets, plus each scored customer's RFM segment.
* ``customer_profile`` — one row per resolved person (seed 003 profile), with the profile as JSON.

Definitions (the tests recompute them independently in DuckDB):

* A *purchase* is an order with ``order_date < as_of`` whose status is not excluded (cancelled).
* Recency = days from the date of the customer's last purchase in the window to the as-of date (a purchase
  the day before scores 1). Frequency = distinct purchases in the window. Monetary = sum of their
  ``total_amount`` (exact decimals; refund orders carry negative amounts and reduce it).
* Quintile score of a value v among the n scored customers: ``1 + floor(5 * (rank(v) - 1) / n)`` where rank
  is the SQL ``RANK()`` of v in ascending order (for recency: of ``-recency_days``, so recent is high). Equal
  values share the lowest rank and so the same score: the tie rule is deterministic and needs no tie-breaker.
  (Computed without a global window: see :func:`quintile_scores`.)
* Identity resolution: customers sharing a normalised email (trimmed, lower case), a normalised phone (its
  last 10 digits) or a web visitor id are one person; the person's id is the smallest customer_id among them
  (connected components by min-label propagation). Survivorship: names, age, gender and location come from
  the most recently updated record (ties: smallest customer_id); identities are the union; a consent holds
  only if every record gives it; the RFM scores are those of the member with the highest R+F+M (ties:
  smallest customer_id).
* An absent optional input (web analytics disabled or never published) arrives as an input with no rows:
  without web analytics there are no sessions, so no preferred channel, no device ids, no abandoned carts,
  and the engagement score is its RFM part alone.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from datetime import datetime
from functools import reduce

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

import jobkit

MONEY = "decimal(18,2)"


def _lit_ts(as_of: datetime):
    return F.lit(as_of).cast("timestamp_ntz")


def purchases(orders: DataFrame, as_of: datetime, excluded: list[str], window_days: int | None = None) -> DataFrame:
    """Orders that count as purchases before ``as_of`` (and within ``window_days`` of it, if given)."""
    cond = (F.col("order_date") < _lit_ts(as_of)) & (
        F.col("order_status").isNull() | ~F.col("order_status").isin(*excluded) if excluded else F.lit(True)
    )
    if window_days is not None:
        cond &= F.col("order_date") >= _lit_ts(as_of) - F.make_dt_interval(days=F.lit(window_days))
    return orders.filter(cond)


def rank_ascending(df: DataFrame, value: str, alias: str, partitions: int) -> DataFrame:
    """SQL ``RANK() OVER (ORDER BY value)`` without a single-partition window.

    A global window sorts every row in one task. Instead the rows are range-partitioned by the value (equal
    values always land in the same partition, partitions are in value order), ranked inside each partition,
    and shifted by the number of rows in the partitions before it: the same ranks, computed in parallel.
    """
    # not cached: on a shared Spark Connect server a cache outlives the job unless it is released, and this
    # path (past COLLECT_LIMIT customers) recomputes the range partitioning once instead
    ranged = df.repartitionByRange(partitions, F.col(value)).withColumn("_pid", F.spark_partition_id())
    sizes = ranged.groupBy("_pid").count()
    before = Window.orderBy("_pid").rowsBetween(Window.unboundedPreceding, -1)  # a few rows: one per partition
    offsets = sizes.select("_pid", F.coalesce(F.sum("count").over(before), F.lit(0)).alias("_offset"))
    local = F.rank().over(Window.partitionBy("_pid").orderBy(F.col(value)))
    return ranged.join(F.broadcast(offsets), "_pid").select(
        *df.columns, (local + F.col("_offset")).alias(alias))


def quintile(rank: str, n: int) -> F.Column:
    """1 + floor(5 * (rank - 1) / n): equal values share the lowest rank, hence the same score."""
    return (F.floor(F.lit(5) * (F.col(rank) - 1) / F.lit(n)) + 1).cast("int")


# Up to this many scored customers the values are collected to the driver (8 bytes per value and metric).
COLLECT_LIMIT = 20_000_000


def quintile_scores(df: DataFrame, columns: dict[str, str]) -> DataFrame:
    """Add a quintile score column (name → value column) per metric, exactly as ``1 + floor(5(rank-1)/n)``.

    The score of v only depends on how many values are strictly below it: score(v) = 1 + #{k in 1..4 :
    v > x[ceil(k*n/5) - 1]} over the sorted values x. So four order statistics per metric decide every score;
    they are found by sorting the values on the driver (numpy, exact), and the scores are plain comparisons:
    no window, no sort, no join over the customers. Past ``COLLECT_LIMIT`` the distributed ranks are used.
    """
    import numpy as np

    # exact integers for the driver: money as cents (decimal(18,2) → long)
    exact = {v: (F.col(v) * 100 if isinstance(df.schema[v].dataType, T.DecimalType) else F.col(v)).cast("long")
             for v in columns.values()}
    # one action: the values (and so n) at once; a count() first would be a second pass over the input
    values = df.select(*[exact[v].alias(v) for v in columns.values()]).limit(COLLECT_LIMIT + 1).toArrow()
    n = values.num_rows
    if n == 0:
        return df.select("*", *[F.lit(None).cast("int").alias(name) for name in columns])
    if n > COLLECT_LIMIT:
        del values
        n = df.count()
        ranked = df
        for name, value in columns.items():
            ranked = rank_ascending(ranked, value, f"_{name}_rank", max(1, n // 50_000 + 1))
        return ranked.select(*df.columns, *[quintile(f"_{name}_rank", n).alias(name) for name in columns])
    cuts = [(k * n + 4) // 5 - 1 for k in range(1, 5)]  # 0-based ceil(k*n/5) - 1
    scores = []
    for name, value in columns.items():
        ordered = np.sort(values.column(value).to_numpy())
        above = [exact[value] > F.lit(int(ordered[i])) for i in cuts]
        scores.append((F.lit(1) + sum(c.cast("int") for c in above)).cast("int").alias(name))
    return df.select("*", *scores)


ORDER_METRIC_KINDS = ("order_value", "order_count")


def order_stats(orders: DataFrame, as_of: datetime, settings: dict, metrics: dict | None = None) -> DataFrame:
    """One pass over the orders: per customer the RFM aggregates of the RFM window (``_rfm_*``) and one
    column per order-based audience metric (its own window). Customers with no purchase in any window are
    absent; columns of a window without purchases are NULL."""
    excluded = settings.get("excluded_statuses", [])
    order_metrics = {k: m for k, m in (metrics or {}).items() if m["kind"] in ORDER_METRIC_KINDS}
    widest = max([settings["window_days"], *[m["window_days"] for m in order_metrics.values()]])
    bought = purchases(orders, as_of, excluded, widest).filter(F.col("customer_id").isNotNull())

    def inside(days: int) -> F.Column:
        return F.col("order_date") >= _lit_ts(as_of) - F.make_dt_interval(days=F.lit(days))

    rfm_in = inside(settings["window_days"])
    amount = F.col("total_amount").cast(MONEY)
    aggs = [
        F.max(F.when(rfm_in, F.col("order_date"))).alias("_rfm_last_order_ts"),
        # order_id is the orders table's primary key: counting rows counts distinct orders (a distinct
        # aggregate would cost another shuffle of every order)
        F.count(F.when(rfm_in, F.lit(1))).cast("int").alias("_rfm_frequency"),
        F.sum(F.when(rfm_in, amount)).cast(MONEY).alias("_rfm_monetary"),
    ]
    for name, m in order_metrics.items():
        if m["kind"] == "order_value":
            aggs.append(F.sum(F.when(inside(m["window_days"]), amount)).cast("double").alias(name))
        else:
            aggs.append(F.count(F.when(inside(m["window_days"]), F.lit(1))).cast("double").alias(name))
    return bought.groupBy("customer_id").agg(*aggs)


def rfm(orders: DataFrame, as_of: datetime, settings: dict, rfm_segments: list[dict],
        stats: DataFrame | None = None) -> DataFrame:
    """RFM per customer with a purchase in the window (``stats``: :func:`order_stats`, computed if absent)."""
    stats = stats if stats is not None else order_stats(orders, as_of, settings)
    per_customer = stats.filter(F.col("_rfm_frequency") > 0).select(
        "customer_id", F.col("_rfm_last_order_ts").alias("last_order_ts"),
        F.col("_rfm_frequency").alias("frequency"), F.col("_rfm_monetary").alias("monetary"))
    as_of_date = F.lit(as_of.date())
    base = per_customer.select(
        "customer_id",
        F.to_date("last_order_ts").alias("last_order_date"),
        F.datediff(as_of_date, F.to_date("last_order_ts")).alias("recency_days"),
        "frequency",
        F.coalesce("monetary", F.lit(0).cast(MONEY)).alias("monetary"),
    )
    base = base.withColumn("_neg_recency", -F.col("recency_days"))  # cheap over the caller's cached stats
    scored = quintile_scores(base, {"r_score": "_neg_recency", "f_score": "frequency", "m_score": "monetary"})
    segment = F.lit(None).cast("string")
    for rule in reversed(rfm_segments):  # first matching rule wins
        cond = F.lit(True)
        for axis in ("r", "f", "m"):
            lo, hi = rule[axis]
            cond &= F.col(f"{axis}_score").between(lo, hi)
        segment = F.when(cond, F.lit(rule["name"])).otherwise(segment)
    return scored.select(
        F.lit(as_of.date()).alias("as_of_date"),
        "customer_id", "last_order_date", "recency_days", "frequency", "monetary",
        "r_score", "f_score", "m_score",
        F.concat(F.col("r_score").cast("string"), F.col("f_score").cast("string"),
                 F.col("m_score").cast("string")).alias("rfm_score"),
        segment.alias("rfm_segment"),
    )


def _stacked(stats: DataFrame, names: list[str]) -> DataFrame:
    """customer_id × metric → value from one column per metric (NULL: the customer has no value)."""
    stacked = F.explode(F.array(*[F.struct(F.lit(k).alias("metric"), F.col(k).alias("value")) for k in names]))
    return stats.select("customer_id", stacked.alias("m")).select("customer_id", "m.metric", "m.value") \
        .filter(F.col("value").isNotNull())


def audience_metrics(orders: DataFrame, items: DataFrame, product: DataFrame, web: DataFrame, as_of: datetime,
                     metrics: dict, excluded: list[str], stats: DataFrame | None = None,
                     lines: DataFrame | None = None) -> DataFrame:
    """customer_id × metric name → value (order-based metrics from ``stats`` when given: :func:`order_stats`
    with these metrics, so the orders are aggregated once for RFM and audiences; item metrics from ``lines``
    when given: :func:`line_stats`)."""
    frames = []
    order_metrics = {k: m for k, m in metrics.items() if m["kind"] in ORDER_METRIC_KINDS}
    if order_metrics:
        if stats is None:
            stats = order_stats(orders, as_of, {"window_days": 1, "excluded_statuses": excluded}, order_metrics)
        frames.append(_stacked(stats, list(order_metrics)))
    item_metrics = [k for k, m in metrics.items() if m["kind"] == "items_in_categories"]
    if lines is not None and item_metrics:
        frames.append(_stacked(lines, item_metrics))
    for name, m in metrics.items():
        if name in order_metrics or (lines is not None and name in item_metrics):
            continue
        bought = purchases(orders, as_of, excluded, m["window_days"]).filter(F.col("customer_id").isNotNull())
        if m["kind"] == "items_in_categories":
            cats = m["categories"]
            lines = bought.select("order_id", "customer_id").join(items.select("order_id", "product_id", "qty"), "order_id")
            lines = lines.join(product.select("product_id", "product_category", "product_subcategory"), "product_id")
            lines = lines.filter(F.col("product_category").isin(*cats) | F.col("product_subcategory").isin(*cats))
            agg = lines.groupBy("customer_id").agg(F.sum(F.coalesce("qty", F.lit(0))).cast("double").alias("value"))
        elif m["kind"] == "abandoned_cart_sessions":
            recent = web.filter(
                (F.col("activity_ts") < _lit_ts(as_of))
                & (F.col("activity_ts") >= _lit_ts(as_of) - F.make_dt_interval(days=F.lit(m["window_days"])))
                & F.col("entity_id").isNotNull()
            )
            sessions = recent.groupBy("entity_id", "session_id").agg(
                F.max((F.col("event_action") == "add_to_cart").cast("int")).alias("carted"),
                F.max((F.col("event_action") == "order_placed").cast("int")).alias("ordered"),
            ).filter((F.col("carted") == 1) & (F.col("ordered") == 0))
            agg = sessions.groupBy(F.col("entity_id").alias("customer_id")).agg(F.count("*").cast("double").alias("value"))
        else:
            raise ValueError(f"unknown metric kind {m['kind']!r} for {name}")
        frames.append(agg.select("customer_id", F.lit(name).alias("metric"), "value"))
    if not frames:
        return orders.sparkSession.createDataFrame([], "customer_id string, metric string, value double")
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out


def segment_membership(metrics: DataFrame, audiences: list[dict], rfm_rows: DataFrame, as_of: datetime) -> DataFrame:
    rules = [(a["name"], a["metric"], float(a["at_least"])) for a in audiences]
    spark = metrics.sparkSession
    rule_df = spark.createDataFrame(rules, "segment_name string, metric string, at_least double")
    members = metrics.join(F.broadcast(rule_df), "metric").filter(F.col("value") >= F.col("at_least")).select(
        "segment_name", "customer_id", F.lit("audience").alias("segment_type"))
    rfm_members = rfm_rows.select(F.col("rfm_segment").alias("segment_name"), "customer_id",
                                  F.lit("rfm").alias("segment_type"))
    return members.unionByName(rfm_members).select(F.lit(as_of.date()).alias("as_of_date"), "*")


def purchase_lines(bought: DataFrame, items: DataFrame, product: DataFrame) -> DataFrame:
    """The line items of the purchases ``bought``, with the product's category (lines of unknown products
    are left out, as the metrics and favourites define)."""
    return bought.select("order_id", "customer_id", "order_date") \
        .join(items.select("order_id", "product_id", "qty"), "order_id") \
        .join(product.select("product_id", "product_category", "product_subcategory"), "product_id")


def line_stats(orders: DataFrame, items: DataFrame, product: DataFrame, as_of: datetime, metrics: dict,
               excluded: list[str]) -> DataFrame:
    """Per customer, one column per ``items_in_categories`` metric: the quantity of the lines in its categories
    (by category or subcategory) of purchases in its window (NULL: no such line; customers without a line in
    any window are absent)."""
    item_metrics = {k: m for k, m in metrics.items() if m["kind"] == "items_in_categories"}
    if not item_metrics:
        return orders.sparkSession.createDataFrame([], "customer_id string")
    widest = max(m["window_days"] for m in item_metrics.values())
    bought = purchases(orders, as_of, excluded, widest).filter(F.col("customer_id").isNotNull())
    aggs = []
    for name, m in item_metrics.items():
        cats = m["categories"]
        match = (F.col("order_date") >= _lit_ts(as_of) - F.make_dt_interval(days=F.lit(m["window_days"]))) & (
            F.col("product_category").isin(*cats) | F.col("product_subcategory").isin(*cats))
        aggs.append(F.sum(F.when(match, F.coalesce("qty", F.lit(0)))).cast("double").alias(name))
    return purchase_lines(bought, items, product).groupBy("customer_id").agg(*aggs)


def purchase_summary(orders: DataFrame, as_of: datetime, excluded: list[str]) -> DataFrame:
    """Per customer with a purchase before ``as_of`` (ever): purchases, spend, last purchase instant."""
    bought = purchases(orders, as_of, excluded).filter(F.col("customer_id").isNotNull())
    return bought.groupBy("customer_id").agg(
        F.count(F.lit(1)).cast("int").alias("purchases"),  # order_id is the key: rows are distinct orders
        F.sum(F.col("total_amount").cast(MONEY)).cast(MONEY).alias("spend"),
        F.max("order_date").alias("last_purchase_ts"),
    )


def category_quantities(orders: DataFrame, items: DataFrame, product: DataFrame, as_of: datetime,
                        excluded: list[str]) -> DataFrame:
    """(customer_id, product_category) → quantity bought ever before ``as_of`` (the profile's favourites)."""
    bought = purchases(orders, as_of, excluded).filter(F.col("customer_id").isNotNull())
    return purchase_lines(bought, items, product).groupBy("customer_id", "product_category") \
        .agg(F.sum("qty").alias("q"))


def customer_state(orders: DataFrame, items: DataFrame, product: DataFrame, as_of: datetime,
                   spec: dict) -> dict[str, DataFrame]:
    """Every per-customer aggregate the outputs read, as of ``as_of``; each a function of the customer's own
    orders (and their lines and products) alone, so the state of customers whose orders did not change and
    crossed no window boundary carries over from one as-of to the next unchanged (:func:`run_incremental`)."""
    excluded = spec["rfm"].get("excluded_statuses", [])
    return {
        "order_stats": order_stats(orders, as_of, spec["rfm"], spec["metrics"]),
        "line_stats": line_stats(orders, items, product, as_of, spec["metrics"], excluded),
        "summary": purchase_summary(orders, as_of, excluded),
        "category_qty": category_quantities(orders, items, product, as_of, excluded),
    }


def orders_enriched(orders: DataFrame, items: DataFrame, product: DataFrame, brand: DataFrame,
                    transactions: DataFrame, as_of: datetime) -> DataFrame:
    placed = orders.filter(F.col("order_date") < _lit_ts(as_of))
    paid = transactions.groupBy("order_id").agg(
        F.sum(F.when(F.col("amount") > 0, F.col("amount").cast(MONEY)).otherwise(0)).cast(MONEY).alias("paid_amount"),
        F.sum(F.when(F.col("amount") < 0, -F.col("amount").cast(MONEY)).otherwise(0)).cast(MONEY).alias("refunded_amount"),
    )
    p = product.select("product_id", "product_name", "product_category", "product_subcategory", "brand_id",
                       F.col("sale_price").cast(MONEY).alias("unit_price"))
    b = brand.select("brand_id", "brand_name", "parent_company")
    lines = placed.join(items.select("order_id", "order_li_id", "product_id", "qty"), "order_id", "left")
    out = lines.join(p, "product_id", "left").join(b, "brand_id", "left").join(paid, "order_id", "left")
    return out.select(
        "order_id", "order_li_id", "customer_id", "order_date", "order_status", "payment_method", "product_id",
        "product_name", "product_category", "product_subcategory", "brand_id", "brand_name", "parent_company",
        "qty", "unit_price", (F.col("qty") * F.col("unit_price")).cast(MONEY).alias("line_amount"),
        F.col("total_amount").cast(MONEY).alias("order_total_amount"),
        F.col("discounted_amount").cast(MONEY).alias("discounted_amount"),
        F.col("shipping_amount").cast(MONEY).alias("shipping_amount"), "transaction_id",
        F.coalesce("paid_amount", F.lit(0).cast(MONEY)).alias("paid_amount"),
        F.coalesce("refunded_amount", F.lit(0).cast(MONEY)).alias("refunded_amount"),
    )


def normalise_email(c) -> F.Column:
    e = F.lower(F.trim(c))
    return F.when(e.contains("@"), e)


def normalise_phone(c) -> F.Column:
    digits = F.regexp_replace(c, "[^0-9]", "")
    return F.when(F.length(digits) >= 7, F.substring(digits, -10, 10))


def identity_keys(customers: DataFrame, visitor_map: DataFrame) -> DataFrame:
    """(customer_id, k): each customer's normalised email (``e:``), phone (``p:``) and visitor ids (``v:``)."""
    return customers.select("customer_id", F.concat(F.lit("e:"), normalise_email("email_address")).alias("k")) \
        .unionByName(customers.select("customer_id", F.concat(F.lit("p:"), normalise_phone("phone_number")).alias("k"))) \
        .unionByName(visitor_map.select("customer_id", F.concat(F.lit("v:"), F.col("fullVisitorId")).alias("k"))) \
        .filter(F.col("k").isNotNull()).join(customers.select("customer_id"), "customer_id").distinct()


def resolve_identities(customers: DataFrame, visitor_map: DataFrame, max_iterations: int = 50,
                       keys: DataFrame | None = None) -> DataFrame:
    """customer_id → profile_id: connected components over shared email, phone and visitor id (``keys``:
    :func:`identity_keys`, computed if absent)."""
    keys = (keys if keys is not None else identity_keys(customers, visitor_map)).cache()
    labels = initial = customers.select("customer_id", F.col("customer_id").alias("label")).cache()
    started = time.perf_counter()
    for iteration in range(1, max_iterations + 1):
        key_min = keys.join(labels, "customer_id").groupBy("k").agg(F.min("label").alias("key_label"))
        proposed = keys.join(key_min, "k").groupBy("customer_id").agg(F.min("key_label").alias("proposed"))
        new = labels.join(proposed, "customer_id", "left").select(
            "customer_id", F.least("label", F.coalesce("proposed", "label")).alias("label"))
        new = new.localCheckpoint()
        changed = new.join(labels.withColumnRenamed("label", "old"), "customer_id") \
            .filter(F.col("label") != F.col("old")).count()
        labels = new
        if changed == 0:
            print(f"identities resolved in {iteration} iterations, {time.perf_counter() - started:.1f} s",
                  file=sys.stderr, flush=True)
            break
    else:
        raise RuntimeError(f"identity resolution did not converge in {max_iterations} iterations")
    # the result is checkpointed; release the caches (a Spark Connect server's cache is shared and long-lived)
    keys.unpersist()
    initial.unpersist()
    return labels.withColumnRenamed("label", "profile_id")


def advance_identities(customers: DataFrame, prev_ids: DataFrame, prev_keys: DataFrame,
                       keys: DataFrame) -> DataFrame:
    """The profiles of ``customers`` (keys ``keys``) from the previous resolution (``prev_ids`` over
    ``prev_keys``), re-resolving only the components that can change: those of customers whose keys changed
    (or who came or went) and of customers sharing a new key with them. That set is closed: an edge leaving
    it would join a customer whose keys did not change to one whose keys did not either (an old edge, inside
    an old component, so inside the set) or to one sharing a new key with a changed one (in the set)."""
    ids = customers.select("customer_id")
    changed = prev_keys.subtract(keys).unionByName(keys.subtract(prev_keys)).select("customer_id") \
        .unionByName(ids.subtract(prev_ids.select("customer_id"))) \
        .unionByName(prev_ids.select("customer_id").subtract(ids)).distinct()
    linked = keys.join(keys.join(changed, "customer_id", "left_semi").select("k").distinct(), "k", "left_semi") \
        .select("customer_id")
    labels = prev_ids.join(changed.unionByName(linked), "customer_id", "left_semi").select("profile_id").distinct()
    members = prev_ids.join(labels, "profile_id", "left_semi").select("customer_id") \
        .unionByName(changed).distinct().join(ids, "customer_id", "left_semi")  # linked: via their labels
    members = members.localCheckpoint()
    subset = customers.join(members, "customer_id", "left_semi")
    resolved = resolve_identities(subset, None, keys=keys.join(members, "customer_id", "left_semi"))
    return prev_ids.join(ids, "customer_id", "left_semi").join(members, "customer_id", "left_anti") \
        .unionByName(resolved)


def customer_profile(customers: DataFrame, visitor_map: DataFrame, summary: DataFrame, category_qty: DataFrame,
                     web: DataFrame, rfm_rows: DataFrame, as_of: datetime, ids: DataFrame | None = None) -> DataFrame:
    """One row per resolved person (``ids``: :func:`resolve_identities`, computed if absent); purchases from
    the per-customer :func:`purchase_summary` and :func:`category_quantities` (sums over the person's
    customers: an order belongs to one customer)."""
    ids = ids if ids is not None else resolve_identities(customers, visitor_map)
    members = customers.join(ids, "customer_id")
    survivor_w = Window.partitionBy("profile_id").orderBy(F.col("updated_at").desc_nulls_last(), "customer_id")
    survivor = members.withColumn("_rn", F.row_number().over(survivor_w)).filter("_rn = 1").select(
        "profile_id", "first_name", "last_name", "age", "gender", "city", "state", "country")
    devices = visitor_map.join(ids, "customer_id").groupBy("profile_id").agg(
        F.array_sort(F.collect_set("fullVisitorId")).alias("device_ids"))
    identity = members.groupBy("profile_id").agg(
        F.array_sort(F.collect_set("customer_id")).alias("customer_ids"),
        F.array_sort(F.collect_set(normalise_email("email_address"))).alias("emails"),
        F.array_sort(F.collect_set(normalise_phone("phone_number"))).alias("phones"),
        F.bool_and(F.coalesce("consent_marketing", F.lit(False))).alias("consent_marketing"),
        F.bool_and(F.coalesce("consent_analytics", F.lit(False))).alias("consent_analytics"),
        F.bool_and(F.coalesce("consent_third_party", F.lit(False))).alias("consent_third_party"),
    )
    per_profile = summary.join(ids, "customer_id").groupBy("profile_id").agg(
        F.sum("purchases").cast("int").alias("total_purchases"),
        F.sum("spend").cast(MONEY).alias("total_spend"),
        F.to_date(F.max("last_purchase_ts")).alias("last_purchase"),
    ).withColumn("avg_order_value", F.round(F.col("total_spend") / F.col("total_purchases"), 2).cast(MONEY))
    cat_qty = category_qty.join(ids, "customer_id").groupBy("profile_id", "product_category") \
        .agg(F.sum("q").alias("q"))
    fav_w = Window.partitionBy("profile_id").orderBy(F.col("q").desc(), "product_category")
    favourites = cat_qty.withColumn("_rn", F.row_number().over(fav_w)).filter("_rn <= 2").groupBy("profile_id") \
        .agg(F.sort_array(F.collect_list(F.struct("_rn", "product_category"))).alias("_f")) \
        .select("profile_id", F.transform("_f", lambda s: s["product_category"]).alias("favorite_categories"))
    rfm_w = Window.partitionBy("profile_id").orderBy(
        (F.col("r_score") + F.col("f_score") + F.col("m_score")).desc(), "customer_id")
    best_rfm = rfm_rows.join(ids, "customer_id").withColumn("_rn", F.row_number().over(rfm_w)).filter("_rn = 1") \
        .select("profile_id", "r_score", "f_score", "m_score", "rfm_segment")
    seen = web.filter((F.col("activity_ts") < _lit_ts(as_of)) & F.col("entity_id").isNotNull()) \
        .join(ids.withColumnRenamed("customer_id", "entity_id"), "entity_id")
    recent = seen.filter(F.col("activity_ts") >= _lit_ts(as_of) - F.make_dt_interval(days=F.lit(90)))
    web_last = seen.groupBy("profile_id").agg(F.to_date(F.max("activity_ts")).alias("last_web"))
    sessions_30 = recent.filter(F.col("activity_ts") >= _lit_ts(as_of) - F.make_dt_interval(days=F.lit(30))) \
        .groupBy("profile_id").agg(F.countDistinct("session_id").alias("sessions_30d"))
    chan = recent.select("profile_id", "session_id", "traffic_channel").distinct() \
        .groupBy("profile_id", "traffic_channel").agg(F.count("*").alias("n"))
    chan_w = Window.partitionBy("profile_id").orderBy(F.col("n").desc(), "traffic_channel")
    preferred = chan.withColumn("_rn", F.row_number().over(chan_w)).filter("_rn = 1") \
        .select("profile_id", F.col("traffic_channel").alias("preferred_channel"))
    p = survivor.join(identity, "profile_id").join(devices, "profile_id", "left").join(per_profile, "profile_id", "left") \
        .join(favourites, "profile_id", "left").join(best_rfm, "profile_id", "left").join(web_last, "profile_id", "left") \
        .join(sessions_30, "profile_id", "left").join(preferred, "profile_id", "left")
    rfm_part = (F.coalesce(F.col("r_score") + F.col("f_score") + F.col("m_score"), F.lit(3)) - 3) / 12.0
    web_part = F.least(F.coalesce("sessions_30d", F.lit(0)), F.lit(10)) / 10.0
    p = p.select(
        "*",
        F.round(100 * (0.6 * rfm_part + 0.4 * web_part)).cast("int").alias("engagement_score"),
        F.greatest("last_purchase", "last_web").alias("last_interaction"),
        F.coalesce("device_ids", F.array().cast("array<string>")).alias("_devices"),
        F.coalesce("favorite_categories", F.array().cast("array<string>")).alias("_favourites"),
    )
    doc = F.to_json(F.struct(
        F.col("profile_id").alias("customerId"),
        F.struct(F.col("emails").alias("email"), F.col("phones").alias("phone"),
                 F.col("_devices").alias("deviceIds"), F.col("customer_ids").alias("customerIds")).alias("identities"),
        F.struct(F.col("first_name").alias("firstName"), F.col("last_name").alias("lastName"), "age", "gender",
                 F.struct("city", "state", "country").alias("location")).alias("demographics"),
        F.struct(F.coalesce("total_purchases", F.lit(0)).alias("totalPurchases"),
                 F.coalesce("total_spend", F.lit(0)).cast("double").alias("totalSpend"),
                 F.col("avg_order_value").cast("double").alias("avgOrderValue"),
                 F.col("last_purchase").cast("string").alias("lastPurchase"),
                 F.col("_favourites").alias("favoriteCategories")).alias("transactions"),
        F.struct(
            F.when(F.col("r_score").isNotNull(), F.struct(F.col("r_score").alias("recency"),
                   F.col("f_score").alias("frequency"), F.col("m_score").alias("monetary"))).alias("rfmScore"),
            F.col("engagement_score").alias("engagementScore"),
            F.col("preferred_channel").alias("preferredChannel"),
            F.col("last_interaction").cast("string").alias("lastInteraction")).alias("engagement"),
        F.struct(F.col("consent_marketing").alias("marketing"), F.col("consent_analytics").alias("analytics"),
                 F.col("consent_third_party").alias("thirdParty")).alias("consent"),
    ), {"ignoreNullFields": "false"})
    return p.select(
        "profile_id", F.lit(as_of.date()).alias("as_of_date"),
        F.to_json("customer_ids").alias("customer_ids"), F.to_json("emails").alias("emails"),
        F.to_json("phones").alias("phones"), F.to_json("_devices").alias("device_ids"),
        "first_name", "last_name", "age", "gender", "city", "state", "country",
        F.coalesce("total_purchases", F.lit(0)).alias("total_purchases"),
        F.coalesce("total_spend", F.lit(0).cast(MONEY)).alias("total_spend"), "avg_order_value", "last_purchase",
        F.to_json("_favourites").alias("favorite_categories"),
        "r_score", "f_score", "m_score", "rfm_segment", "engagement_score", "preferred_channel", "last_interaction",
        "consent_marketing", "consent_analytics", "consent_third_party", doc.alias("profile"),
    )


# The state a run leaves for the next one (``--state-out``; read back by an incremental run's ``--state-in``):
# mirrors of the large inputs (business key each), snapshots of the small ones, the per-customer aggregates
# (:func:`customer_state`), the identity keys and resolved profiles (:func:`advance_identities`) and
# ``meta`` (as-of, segment spec fingerprint, the mirrors' layers).
MIRRORS = {"orders": "order_id", "order_line_item": "order_li_id", "transactions": "transaction_id"}
SNAPSHOTS = ("product", "brand")
STATE_TABLES = ("order_stats", "line_stats", "summary", "category_qty")
DELETED = "_deleted"  # an incremental run's change sets: the current row of a changed key, or the key deleted
# A mirror is a base plus the change sets since (read_mirror): a run adds its change set as a layer, and
# rewrites the mirror as one base past this many layers or rows in them. A state lists the layers of earlier
# states: the caller keeps a state's folder while a later state it will advance refers to it.
MAX_LAYERS = 8
MAX_LAYER_ROWS = 2_000_000
# the columns of the small inputs that orders_enriched and the metrics read (other changes affect no output)
PRODUCT_COLUMNS = ("product_id", "product_name", "product_category", "product_subcategory", "brand_id",
                   "sale_price")
BRAND_COLUMNS = ("brand_id", "brand_name", "parent_company")
CATEGORY_COLUMNS = ("product_id", "product_category", "product_subcategory")  # what the customer state reads


class StateMismatch(ValueError):
    """The state given to an incremental run cannot be advanced to its as-of: a full rebuild is needed."""


def spec_fingerprint(spec: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def windows(spec: dict) -> list[int]:
    """Every window (days) an order's contribution to the per-customer state depends on."""
    kinds = (*ORDER_METRIC_KINDS, "items_in_categories")
    return sorted({spec["rfm"]["window_days"], *[m["window_days"] for m in spec["metrics"].values()
                                                 if m["kind"] in kinds]})


# Up to this many keys a semi-join's key side is broadcast (its rows to every task) instead of shuffling both
BROADCAST_ROWS = 5_000_000


def _small(df: DataFrame, limit: int) -> DataFrame:
    """``df`` marked for broadcast if it has at most ``limit`` rows (``df`` is materialised: counting is cheap)."""
    return F.broadcast(df) if df.count() <= limit else df


def _write(df: DataFrame, uri: str) -> None:
    """Write ``df`` to ``uri`` as Parquet, logging how long it took (the task log shows where the time goes)."""
    started = time.perf_counter()
    df.write.mode("overwrite").parquet(uri)
    print(f"wrote {uri.rstrip('/').rsplit('/', 2)[-2:]} in {time.perf_counter() - started:.1f} s", file=sys.stderr,
          flush=True)


def _materialise(df: DataFrame, uri: str) -> DataFrame:
    """Write ``df`` to ``uri`` and read it back: later steps read the files, not the plan (computed once)."""
    _write(df, uri)
    return df.sparkSession.read.parquet(uri)


def _changed_keys(before: DataFrame, after: DataFrame, columns: tuple[str, ...]) -> DataFrame:
    """Keys (the first column) whose row in ``columns`` differs between two snapshots, added or removed."""
    b, a = before.select(*columns), after.select(*columns)
    return b.subtract(a).unionByName(a.subtract(b)).select(columns[0]).distinct()


def advance_state(spark: SparkSession, changes: dict[str, DataFrame], snapshots: dict[str, DataFrame],
                  state_in: str, state_out: str, as_of: datetime, spec: dict) -> tuple[dict, DataFrame, int]:
    """The state as of ``as_of`` from the state of an earlier as-of and what changed since: returns
    (new state tables, the order ids whose enriched rows are replaced, the number of customers recomputed).

    ``changes``: for each mirrored input (:data:`MIRRORS`) the current row of every key changed since the
    state was taken (``_deleted`` true: the key is gone); ``snapshots``: the small inputs in full. The
    caller's duty: the change sets are complete (every key changed since the state's export is in them) —
    a change missing from them stays missing from every later incremental output.

    Orders whose contribution to the customer state may change: orders changed, or whose lines changed
    (their old and new order), or with a line of a product whose category changed (or that appeared or
    went), or placed in [previous as-of, as-of). Orders whose enriched rows are replaced: those, and orders
    whose payments changed (old and new order) or with a line of a product whose enriched columns or brand
    changed. Customers recomputed: the old and new customer of the first kind, and the customers of orders
    crossing a window's start (``windows``) between the two as-of dates; every other customer's aggregates
    are functions of unchanged orders over unchanged windows, so they carry over.
    """
    meta = spark.read.parquet(f"{state_in}/meta").collect()
    if len(meta) != 1:
        raise StateMismatch(f"{state_in}/meta: expected one row, found {len(meta)}")
    t0, fingerprint = meta[0]["as_of"], meta[0]["spec"]
    if fingerprint != spec_fingerprint(spec):
        raise StateMismatch(f"{state_in} was built with another segments spec ({fingerprint}, this run: "
                            f"{spec_fingerprint(spec)}): run a full rebuild")
    if not t0 < as_of:
        raise StateMismatch(f"{state_in} is as of {t0}, not before this run's as-of {as_of}: an incremental "
                            f"run only moves forward (a backfill is a full rebuild)")
    prev_layers = json.loads(meta[0]["layers"])
    prev = {name: spark.read.parquet(f"{state_in}/{name}") for name in (*SNAPSHOTS, *STATE_TABLES)}
    new, layers = {}, {}
    for name, key in MIRRORS.items():
        prev[name] = read_mirror(spark, prev_layers[name], key)
        _write(changes[name], f"{state_out}/{name}")
        layers[name] = [*prev_layers[name], f"{state_out}/{name}"]
        if len(layers[name]) > MAX_LAYERS or sum(
                spark.read.parquet(u).count() for u in layers[name][1:]) > MAX_LAYER_ROWS:
            compacted = f"{state_out}/{name}_compacted"
            _write(read_mirror(spark, layers[name], key), compacted)
            layers[name] = [compacted]
        new[name] = read_mirror(spark, layers[name], key)
    for name in SNAPSHOTS:
        new[name] = _materialise(snapshots[name], f"{state_out}/{name}")

    t0_ts, t1_ts = F.lit(t0).cast("timestamp_ntz"), _lit_ts(as_of)
    lines, txn = changes["order_line_item"], changes["transactions"]

    def orders_of_products(products: DataFrame) -> DataFrame:
        return new["order_line_item"].join(F.broadcast(products.distinct()), "product_id", "left_semi") \
            .select("order_id")

    # orders whose contribution to the per-customer state may differ: the order, its lines or its products'
    # categories changed, or it was placed since the last as-of
    for_state = (
        changes["orders"].select("order_id")
        .unionByName(prev["order_line_item"].join(lines.select("order_li_id"), "order_li_id", "left_semi")
                     .select("order_id"))
        .unionByName(lines.filter(~F.col(DELETED)).select("order_id"))
        .unionByName(orders_of_products(_changed_keys(prev["product"], new["product"], CATEGORY_COLUMNS)))
        .unionByName(new["orders"].filter((F.col("order_date") >= t0_ts) & (F.col("order_date") < t1_ts))
                     .select("order_id"))
    )
    # and whose enriched rows may differ besides: their payments, or their products' other columns or brand
    brands = _changed_keys(prev["brand"], new["brand"], BRAND_COLUMNS)
    products = _changed_keys(prev["product"], new["product"], PRODUCT_COLUMNS).unionByName(
        prev["product"].unionByName(new["product"]).join(brands, "brand_id", "left_semi").select("product_id"))
    for_enriched = (
        prev["transactions"].join(txn.select("transaction_id"), "transaction_id", "left_semi").select("order_id")
        .unionByName(txn.filter(~F.col(DELETED)).select("order_id"))
        .unionByName(orders_of_products(products))
    )
    for_state = _materialise(for_state.filter(F.col("order_id").isNotNull()).distinct(),
                             f"{state_out}/_changed_orders")
    orders = _materialise(for_state.unionByName(for_enriched).filter(F.col("order_id").isNotNull()).distinct(),
                          f"{state_out}/_replaced_orders")

    def crossing(w: int) -> F.Column:
        start0, start1 = t0_ts - F.make_dt_interval(days=F.lit(w)), t1_ts - F.make_dt_interval(days=F.lit(w))
        return (F.col("order_date") >= start0) & (F.col("order_date") < start1)

    crossed = reduce(lambda a, b: a | b, [crossing(w) for w in windows(spec)])
    customers = (
        prev["orders"].join(for_state, "order_id", "left_semi").select("customer_id")
        .unionByName(new["orders"].join(for_state, "order_id", "left_semi").select("customer_id"))
        .unionByName(new["orders"].filter(crossed).select("customer_id"))
    ).filter(F.col("customer_id").isNotNull()).distinct()
    customers = _materialise(customers, f"{state_out}/_recomputed_customers")
    # the recomputed customers' orders and their lines, read from the mirrors once for all four aggregates
    # (only the columns the aggregates read)
    their_orders = _materialise(
        new["orders"].select("order_id", "customer_id", "order_date", "order_status", "total_amount")
        .join(_small(customers, BROADCAST_ROWS), "customer_id", "left_semi"), f"{state_out}/_recomputed_orders")
    their_lines = _materialise(
        new["order_line_item"].select("order_id", "product_id", "qty")
        .join(_small(their_orders.select("order_id"), BROADCAST_ROWS), "order_id", "left_semi"),
        f"{state_out}/_recomputed_lines")
    fresh = customer_state(their_orders, their_lines, new["product"], as_of, spec)
    state = {name: _materialise(prev[name].join(customers, "customer_id", "left_anti").unionByName(fresh[name]),
                                f"{state_out}/{name}") for name in STATE_TABLES}
    _write_meta(spark, state_out, as_of, spec, layers)
    return {**new, **state}, orders, customers.count()


def read_mirror(spark: SparkSession, layers: list[str], key: str) -> DataFrame:
    """A mirrored input's current rows from its layers (a base, then change sets oldest first): each layer's
    rows whose key no later layer holds (a later layer's row or deletion wins). The change layers are small
    (at most ``MAX_LAYER_ROWS`` rows together): their keys are broadcast, the base is scanned, never rewritten."""
    frames = [spark.read.parquet(u) for u in layers]
    out = None
    for i, df in enumerate(frames):
        rows = df.filter(~F.col(DELETED)).drop(DELETED) if DELETED in df.columns else df
        later = [f.select(key) for f in frames[i + 1:]]
        if later:
            rows = rows.join(F.broadcast(reduce(DataFrame.unionByName, later)), key, "left_anti")
        out = rows if out is None else out.unionByName(rows)
    return out


def _write_meta(spark: SparkSession, state_out: str, as_of: datetime, spec: dict, layers: dict) -> None:
    spark.createDataFrame([(as_of, spec_fingerprint(spec), json.dumps(layers))],
                          "as_of timestamp_ntz, spec string, layers string") \
        .write.mode("overwrite").parquet(f"{state_out}/meta")


def run(spark: SparkSession, inputs: dict[str, str], as_of: datetime, spec: dict, out: str,
        state_in: str | None = None, state_out: str | None = None) -> dict[str, int]:
    """Every output as of ``as_of`` into ``out``. A full rebuild reads every input in full; with ``state_in``
    (incremental, ``state_out`` required) the mirrored inputs are change sets (:func:`advance_state`) and
    ``orders_enriched`` holds the rows of the orders listed in ``orders_enriched_replaced`` only (the
    publish replaces those orders' rows). ``state_out``: where the state for the next run goes."""
    read = {name: spark.read.parquet(uri) for name, uri in inputs.items() if name != "visitor_map"}
    vmap = spark.read.csv(inputs["visitor_map"], header=True, schema="fullVisitorId string, customer_id string") \
        .filter(F.col("fullVisitorId").isNotNull() & F.col("customer_id").isNotNull()).distinct()
    excluded = spec["rfm"].get("excluded_statuses", [])
    cached: list[DataFrame] = []
    counts: dict[str, int] = {}
    try:
        if state_in is not None:
            if state_out is None:
                raise ValueError("an incremental run (--state-in) needs --state-out")
            state, replaced, counts["recomputed_customers"] = advance_state(
                spark, {n: read[n] for n in MIRRORS}, {n: read[n] for n in SNAPSHOTS}, state_in, state_out,
                as_of, spec)
            subset = {n: state[n].join(replaced, "order_id", "left_semi") for n in MIRRORS}
            enriched = orders_enriched(subset["orders"], subset["order_line_item"], state["product"],
                                       state["brand"], subset["transactions"], as_of)
            _write(replaced, f"{out}/orders_enriched_replaced")
            counts["orders_enriched_replaced"] = replaced.count()
            tables = state
            keys = _materialise(identity_keys(read["customer"], vmap), f"{state_out}/identity_keys")
            ids = _materialise(advance_identities(read["customer"], spark.read.parquet(f"{state_in}/identities"),
                                                  spark.read.parquet(f"{state_in}/identity_keys"), keys),
                               f"{state_out}/identities")
        else:
            tables = read
            orders = read["orders"].cache()
            cached.append(orders)
            state = customer_state(orders, read["order_line_item"], read["product"], as_of, spec)
            if state_out is not None:
                for name in (*MIRRORS, *SNAPSHOTS):
                    _write(read[name], f"{state_out}/{name}")
                state = {name: _materialise(df, f"{state_out}/{name}") for name, df in state.items()}
                keys = _materialise(identity_keys(read["customer"], vmap), f"{state_out}/identity_keys")
                ids = _materialise(resolve_identities(read["customer"], vmap, keys=keys), f"{state_out}/identities")
                _write_meta(spark, state_out, as_of, spec, {n: [f"{state_out}/{n}"] for n in MIRRORS})
            else:
                ids = None  # resolved by customer_profile
                state["order_stats"] = state["order_stats"].cache()
                cached.append(state["order_stats"])
            enriched = orders_enriched(orders, read["order_line_item"], read["product"], read["brand"],
                                       read["transactions"], as_of)
        rfm_rows = rfm(None, as_of, spec["rfm"], spec["rfm_segments"], state["order_stats"]).cache()
        cached.append(rfm_rows)
        metrics = audience_metrics(tables["orders"], tables["order_line_item"], tables["product"],
                                   read["web_analytics"], as_of, spec["metrics"], excluded, state["order_stats"],
                                   state["line_stats"])
        outputs = {
            "orders_enriched": enriched,
            "rfm": rfm_rows,
            "segment_membership": segment_membership(metrics, spec["audiences"], rfm_rows, as_of),
            "customer_profile": customer_profile(read["customer"], vmap, state["summary"], state["category_qty"],
                                                 read["web_analytics"], rfm_rows, as_of, ids),
        }
        for name, df in outputs.items():
            _write(df, f"{out}/{name}")
            counts[name] = spark.read.parquet(f"{out}/{name}").count()
    finally:
        # a Spark Connect server shares its cache across sessions and keeps it after the job: a cached
        # plan left behind would serve the next run's read of the same path with this run's data
        for df in reversed(cached):
            df.unpersist()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = jobkit.argument_parser(__doc__)
    parser.add_argument("--inputs", required=True, help="base64 JSON: input name → Parquet/CSV URI")
    parser.add_argument("--as-of", required=True, help="ISO timestamp: outputs as of this instant (exclusive)")
    parser.add_argument("--spec", required=True, help="base64 JSON of include/c360/segments.yaml")
    parser.add_argument("--out", required=True)
    parser.add_argument("--state-in", help="incremental: the state an earlier run left (--inputs' orders, "
                                           "line items and transactions are then change sets)")
    parser.add_argument("--state-out", help="where to leave the state for the next (incremental) run")
    args = parser.parse_args(argv)
    inputs = json.loads(base64.b64decode(args.inputs))
    spec = json.loads(base64.b64decode(args.spec))
    as_of = datetime.fromisoformat(args.as_of).replace(tzinfo=None)
    with jobkit.job_session("c360_customer360", args) as spark:
        # an empty value is no state (the DAG passes both on every run)
        counts = run(spark, inputs, as_of, spec, args.out, args.state_in or None, args.state_out or None)
    print(json.dumps({"as_of": args.as_of, **counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
