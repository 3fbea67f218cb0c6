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
from datetime import datetime

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


def audience_metrics(orders: DataFrame, items: DataFrame, product: DataFrame, web: DataFrame, as_of: datetime,
                     metrics: dict, excluded: list[str], stats: DataFrame | None = None) -> DataFrame:
    """customer_id × metric name → value (order-based metrics from ``stats`` when given: :func:`order_stats`
    with these metrics, so the orders are aggregated once for RFM and audiences)."""
    frames = []
    order_metrics = {k: m for k, m in metrics.items() if m["kind"] in ORDER_METRIC_KINDS}
    if order_metrics:
        if stats is None:
            stats = order_stats(orders, as_of, {"window_days": 1, "excluded_statuses": excluded}, order_metrics)
        stacked = F.explode(F.array(*[F.struct(F.lit(k).alias("metric"), F.col(k).alias("value"))
                                      for k in order_metrics]))
        frames.append(stats.select("customer_id", stacked.alias("m"))
                      .select("customer_id", "m.metric", "m.value").filter(F.col("value").isNotNull()))
    for name, m in metrics.items():
        if name in order_metrics:
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


def resolve_identities(customers: DataFrame, visitor_map: DataFrame, max_iterations: int = 50) -> DataFrame:
    """customer_id → profile_id: connected components over shared email, phone and visitor id."""
    keys = customers.select("customer_id", F.concat(F.lit("e:"), normalise_email("email_address")).alias("k")) \
        .unionByName(customers.select("customer_id", F.concat(F.lit("p:"), normalise_phone("phone_number")).alias("k"))) \
        .unionByName(visitor_map.select("customer_id", F.concat(F.lit("v:"), F.col("fullVisitorId")).alias("k"))) \
        .filter(F.col("k").isNotNull()).join(customers.select("customer_id"), "customer_id").distinct().cache()
    labels = initial = customers.select("customer_id", F.col("customer_id").alias("label")).cache()
    for _ in range(max_iterations):
        key_min = keys.join(labels, "customer_id").groupBy("k").agg(F.min("label").alias("key_label"))
        proposed = keys.join(key_min, "k").groupBy("customer_id").agg(F.min("key_label").alias("proposed"))
        new = labels.join(proposed, "customer_id", "left").select(
            "customer_id", F.least("label", F.coalesce("proposed", "label")).alias("label"))
        new = new.localCheckpoint()
        changed = new.join(labels.withColumnRenamed("label", "old"), "customer_id") \
            .filter(F.col("label") != F.col("old")).count()
        labels = new
        if changed == 0:
            break
    else:
        raise RuntimeError(f"identity resolution did not converge in {max_iterations} iterations")
    # the result is checkpointed; release the caches (a Spark Connect server's cache is shared and long-lived)
    keys.unpersist()
    initial.unpersist()
    return labels.withColumnRenamed("label", "profile_id")


def customer_profile(customers: DataFrame, visitor_map: DataFrame, orders: DataFrame, items: DataFrame,
                     product: DataFrame, web: DataFrame, rfm_rows: DataFrame, as_of: datetime,
                     excluded: list[str]) -> DataFrame:
    ids = resolve_identities(customers, visitor_map)
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
    bought = purchases(orders, as_of, excluded).join(ids, "customer_id")
    summary = bought.groupBy("profile_id").agg(
        F.countDistinct("order_id").cast("int").alias("total_purchases"),
        F.sum(F.col("total_amount").cast(MONEY)).cast(MONEY).alias("total_spend"),
        F.to_date(F.max("order_date")).alias("last_purchase"),
    ).withColumn("avg_order_value", F.round(F.col("total_spend") / F.col("total_purchases"), 2).cast(MONEY))
    cat_qty = bought.select("profile_id", "order_id").join(items.select("order_id", "product_id", "qty"), "order_id") \
        .join(product.select("product_id", "product_category"), "product_id") \
        .groupBy("profile_id", "product_category").agg(F.sum("qty").alias("q"))
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
    p = survivor.join(identity, "profile_id").join(devices, "profile_id", "left").join(summary, "profile_id", "left") \
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


def run(spark: SparkSession, inputs: dict[str, str], as_of: datetime, spec: dict, out: str) -> dict[str, int]:
    read = {name: spark.read.parquet(uri) for name, uri in inputs.items() if name != "visitor_map"}
    vmap = spark.read.csv(inputs["visitor_map"], header=True, schema="fullVisitorId string, customer_id string") \
        .filter(F.col("fullVisitorId").isNotNull() & F.col("customer_id").isNotNull()).distinct()
    excluded = spec["rfm"].get("excluded_statuses", [])
    orders = read["orders"].cache()
    stats = rfm_rows = None
    try:
        stats = order_stats(orders, as_of, spec["rfm"], spec["metrics"]).cache()
        rfm_rows = rfm(orders, as_of, spec["rfm"], spec["rfm_segments"], stats).cache()
        metrics = audience_metrics(orders, read["order_line_item"], read["product"], read["web_analytics"],
                                   as_of, spec["metrics"], excluded, stats)
        outputs = {
            "orders_enriched": orders_enriched(orders, read["order_line_item"], read["product"], read["brand"],
                                               read["transactions"], as_of),
            "rfm": rfm_rows,
            "segment_membership": segment_membership(metrics, spec["audiences"], rfm_rows, as_of),
            "customer_profile": customer_profile(read["customer"], vmap, orders, read["order_line_item"],
                                                 read["product"], read["web_analytics"], rfm_rows, as_of,
                                                 excluded),
        }
        counts = {}
        for name, df in outputs.items():
            df.write.mode("overwrite").parquet(f"{out}/{name}")
            counts[name] = spark.read.parquet(f"{out}/{name}").count()
    finally:
        # a Spark Connect server shares its cache across sessions and keeps it after the job: a cached
        # plan left behind would serve the next run's read of the same path with this run's data
        for df in (rfm_rows, stats, orders):
            if df is not None:
                df.unpersist()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = jobkit.argument_parser(__doc__)
    parser.add_argument("--inputs", required=True, help="base64 JSON: input name → Parquet/CSV URI")
    parser.add_argument("--as-of", required=True, help="ISO timestamp: outputs as of this instant (exclusive)")
    parser.add_argument("--spec", required=True, help="base64 JSON of include/c360/segments.yaml")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    inputs = json.loads(base64.b64decode(args.inputs))
    spec = json.loads(base64.b64decode(args.spec))
    as_of = datetime.fromisoformat(args.as_of).replace(tzinfo=None)
    with jobkit.job_session("c360_customer360", args) as spark:
        counts = run(spark, inputs, as_of, spec, args.out)
    print(json.dumps({"as_of": args.as_of, **counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
