"""Every dataset contract on generated data in the real warehouse with Soda: each seeded defect fails (warns)
exactly its check, and the same data without defects passes every check."""

from __future__ import annotations

import pytest

from c360 import generator, pg, quality, settings, warehouse
from c360.registry import load_registry

pytestmark = pytest.mark.integration

SCALE = generator.Scale(customers=3_000, days=7, orders_per_day=1_500, sessions_per_hour=1, ga_days=1)
# generator defect (include/c360/generator.py DEFECT_RATES) → the check it must break, per dataset
DEFECT_CHECKS = {
    "customer": {"completeness - contact email", "value range - age", "accuracy - gender"},
    "product": {"missing values - description"},
    "orders": {"consistency - order status", "accuracy - payment method"},
    "transactions": {"completeness - transaction details (payment method)"},
    "brand": set(),
    "order_line_item": set(),
}


def _stage(name: str, table) -> str:
    """The generated rows as the stage step would hand them over: text as it is, latest version per key."""
    from psycopg import sql

    ds = load_registry()[name]
    target = f"staging.contract_test_{name}"
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        warehouse.ensure_table(conn, ds)
        conn.execute(sql.SQL("drop table if exists {}").format(warehouse.ident(target)))
        conn.execute(sql.SQL("create table {} (like {})").format(warehouse.ident(target), warehouse.ident(ds.output.table)))
        warehouse.copy_arrow(conn, target, table.select(ds.column_names))
        keys = sql.SQL(" and ").join(sql.SQL("a.{k} = b.{k}").format(k=sql.Identifier(k)) for k in ds.business_key)
        conn.execute(sql.SQL("delete from {t} a using {t} b where {keys} and a.{v} < b.{v}").format(
            t=warehouse.ident(target), keys=keys, v=sql.Identifier(ds.version_column)))
    return target


def _outcomes(name: str, data) -> dict[str, str]:
    ds = load_registry()[name]
    results = quality.verify(ds.contract_path, _stage(name, data.tables[name]), SCALE.end_ts)
    return {r.check_name: r.outcome for r in results}


@pytest.fixture(scope="module")
def generated(platform):
    return generator.generate(SCALE), generator.generate(generator.Scale(**{**SCALE.__dict__, "defects": False}))


@pytest.mark.parametrize("name", sorted(DEFECT_CHECKS))
def test_each_seeded_defect_breaks_exactly_its_check(generated, name):
    with_defects, clean = generated
    outcomes = _outcomes(name, with_defects)
    assert {c for c, o in outcomes.items() if o != "passed"} == DEFECT_CHECKS[name], outcomes
    assert {outcomes[c] for c in DEFECT_CHECKS[name]} <= {"warned"}  # seeded rates stay below blocking
    clean_outcomes = _outcomes(name, clean)
    assert set(clean_outcomes.values()) == {"passed"}, clean_outcomes
    assert quality.score([quality.CheckResult(c, None, o, None, None, "warning") for c, o in clean_outcomes.items()]) == 100


def test_freshness_warns_when_the_source_stalled(generated):
    """The same customer batch judged as of two days after its newest row: the freshness check warns."""
    from datetime import timedelta

    with_defects, _ = generated
    ds = load_registry()["customer"]
    results = quality.verify(ds.contract_path, _stage("customer", with_defects.tables["customer"]),
                             SCALE.end_ts + timedelta(days=2))
    outcome = {r.check_name: r for r in results}["freshness - newest row before the interval end"]
    assert outcome.outcome == "warned" and outcome.severity == "warning"


def test_an_empty_batch_warns_on_freshness_and_blocks_nothing(generated):
    """A quiet interval (no rows) is valid: Soda cannot measure freshness, which warns but never blocks."""
    with_defects, _ = generated
    ds = load_registry()["brand"]
    results = quality.verify(ds.contract_path, _stage("brand", with_defects.tables["brand"].slice(0, 0)),
                             SCALE.end_ts)
    outcomes = {r.check_name: r.outcome for r in results}
    assert outcomes["freshness - newest row before the interval end"] == "warned"
    assert "failed" not in outcomes.values(), outcomes


def test_an_accepted_value_list_decides_what_blocks(generated, monkeypatch, tmp_path):
    """A catalogue with 10 % "Music" products blocks on the default category list, and passes every check once
    the deployment's list (C360_ACCEPTED_VALUES) accepts Music."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from c360 import accepted_values

    monkeypatch.delenv(accepted_values.ENV_VAR, raising=False)
    _, clean = generated
    product = clean.tables["product"]
    music = pa.array([i % 10 == 0 for i in range(product.num_rows)])
    i = product.schema.get_field_index("product_category")
    product = product.set_column(i, "product_category", pc.if_else(music, "Music", product.column(i)))
    ds = load_registry()["product"]
    batch = _stage("product", product)
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        (share,) = conn.execute(f"select avg((product_category = 'Music')::int) from {batch}").fetchone()
    assert 0.09 < share < 0.11

    results = {r.check_name: r for r in quality.verify(ds.contract_path, batch, SCALE.end_ts)}
    failed = {name for name, r in results.items() if r.outcome == "failed"}
    assert failed == {"consistency - category"}
    assert results["consistency - category"].severity == "blocking"
    assert 9 < results["consistency - category"].measured_value < 11  # percent of rows outside the list

    override = tmp_path / "accepted_values.yml"
    override.write_text(f"product_category: {[*accepted_values.load()['product_category'], 'Music']}\n")
    monkeypatch.setenv(accepted_values.ENV_VAR, str(override))
    outcomes = {r.check_name: r.outcome for r in quality.verify(ds.contract_path, batch, SCALE.end_ts)}
    assert "failed" not in outcomes.values(), outcomes
    assert outcomes["consistency - category"] == "passed"
