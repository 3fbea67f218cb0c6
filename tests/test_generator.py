"""The source generator: deterministic, realistic enough, defects exactly where documented."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow.compute as pc
import pytest

from c360.generator import DEFECT_RATES, Scale, generate

SMALL = Scale(customers=3_000, days=7, orders_per_day=300, sessions_per_hour=15, ga_days=1)


def _digest(data) -> str:
    h = hashlib.sha256()
    for name in sorted(data.tables):
        h.update(name.encode())
        h.update(data.tables[name].to_pandas().to_csv(index=False).encode())
    for rel in sorted(data.ga_files):
        h.update(rel.encode() + data.ga_files[rel])
    h.update(data.visitor_map)
    return h.hexdigest()


@pytest.fixture(scope="module")
def with_defects():
    return generate(SMALL)


@pytest.fixture(scope="module")
def clean():
    return generate(Scale(**{**SMALL.__dict__, "defects": False}))


def test_same_seed_same_data(with_defects):
    assert _digest(generate(SMALL)) == _digest(with_defects)


def test_other_seed_other_data(with_defects):
    assert _digest(generate(Scale(**{**SMALL.__dict__, "seed": 7}))) != _digest(with_defects)


def test_clean_data_has_no_defects(clean):
    c = clean.tables["customer"]
    assert c.column("email_address").null_count == 0
    ages = c.column("age").to_numpy()
    assert ages.min() >= 18 and ages.max() <= 120
    assert set(c.column("gender").to_pylist()) <= {"M", "F", "O", "U"}
    assert pc.count_distinct(c.column("customer_id")).as_py() == c.num_rows
    assert all(v == 0 for v in clean.defects.values()), clean.defects
    for content in clean.ga_files.values():
        for line in content.decode().splitlines():
            json.loads(line)


def test_defect_rates_are_near_documented(with_defects):
    n = SMALL.customers
    d = with_defects.defects
    for name in ("missing_email", "age_out_of_range", "inconsistent_gender"):
        rate = d[name] / n
        assert DEFECT_RATES[name] / 2 <= rate <= DEFECT_RATES[name] * 2, (name, rate)
    c = with_defects.tables["customer"]
    assert c.num_rows == n + d["duplicate_customer_id"] + d["same_person_twice"]
    originals = c.slice(0, n)  # duplicates are copies of originals, defects included
    assert originals.column("email_address").null_count == d["missing_email"]
    bad_gender = sum(g not in {"M", "F", "O", "U"} for g in originals.column("gender").to_pylist())
    assert bad_gender == d["inconsistent_gender"]
    ages = originals.column("age").to_numpy()
    assert ((ages < 18) | (ages > 120)).sum() == d["age_out_of_range"]


def test_late_rows_are_held_back(with_defects):
    late = with_defects.late["orders"]
    assert late.num_rows == with_defects.defects["late_arriving"] > 0
    held = set(late.column("order_id").to_pylist())
    assert held.isdisjoint(with_defects.tables["orders"].column("order_id").to_pylist())
    assert set(with_defects.late["order_line_item"].column("order_id").to_pylist()) <= held


def test_shapes_repeat_buyers_weekly_seasonality_long_tail(with_defects):
    orders = with_defects.tables["orders"]
    per_customer = np.unique(orders.column("customer_id").to_numpy(zero_copy_only=False), return_counts=True)[1]
    assert per_customer.max() >= 5 and (per_customer > 1).mean() > 0.2  # repeat buyers
    days = orders.column("order_date").to_numpy().astype("datetime64[D]")
    weekday = (days.view("int64") - 4) % 7
    weekend = np.isin(weekday, [5, 6]).sum() / 2
    weekdays = (~np.isin(weekday, [5, 6])).sum() / 5
    assert weekend > 1.2 * weekdays
    totals = orders.column("total_amount").to_numpy()
    assert np.percentile(totals, 99) > 4 * np.median(totals)  # long tail


def test_sessions_view_favourite_cart_abandon_and_buy(with_defects):
    actions, abandoned, bought = set(), 0, 0
    for content in with_defects.ga_files.values():
        for line in content.decode().splitlines():
            try:
                s = json.loads(line)
            except json.JSONDecodeError:
                continue
            hits = s["hits"]
            kinds = {h["eCommerceAction"]["action_type"] for h in hits}
            actions |= {h.get("eventInfo", {}).get("eventAction") for h in hits} | kinds
            if "3" in kinds:
                bought += "6" in kinds
                abandoned += "6" not in kinds
            assert {"fullVisitorId", "visitId", "visitNumber", "visitStartTime", "date", "totals",
                    "trafficSource", "device", "geoNetwork", "customDimensions"} <= set(s)
    assert {"2", "3", "6", "add_to_wishlist", "add_to_cart"} <= actions
    assert bought > 0 and abandoned > 0


def test_tables_agree_with_each_other(with_defects):
    """Keys resolve across tables (late rows included), and each order's transaction carries its total."""
    t, late = with_defects.tables, with_defects.late

    def ids(name: str, column: str, *, held: bool = False) -> set:
        tables = [t[name], late[name]] if held else [t[name]]
        return {v for table in tables for v in table.column(column).to_pylist()}

    assert ids("product", "brand_id") <= ids("brand", "brand_id")
    originals = set(t["customer"].column("customer_id").to_pylist()[:SMALL.customers])
    assert ids("orders", "customer_id", held=True) <= originals
    order_ids = ids("orders", "order_id", held=True)
    assert ids("order_line_item", "order_id", held=True) == order_ids  # every order has items
    assert ids("order_line_item", "product_id", held=True) <= ids("product", "product_id")
    assert ids("transactions", "order_id", held=True) == order_ids
    paid = {r["transaction_id"]: r["amount"] for r in t["transactions"].to_pylist()}
    for order in t["orders"].to_pylist():
        assert paid[order["transaction_id"]] == order["total_amount"]
        if f"{order['transaction_id']}R" in paid:  # a refund: of a returned order, the whole total back
            assert order["order_status"] == "returned"
            assert paid[f"{order['transaction_id']}R"] == -order["total_amount"]
