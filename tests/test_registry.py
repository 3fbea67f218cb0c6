"""The typed dataset registry: the real file validates; malformed entries fail with a precise message."""

from __future__ import annotations

import copy

import pytest
import yaml

from c360.registry import REGISTRY_FILE, RegistryError, cadence_label, load_registry, parse_registry

# A spec check, not a list of everything: the seed's datasets must be in the registry (a deployment may add
# more). Tests that go over every dataset or DAG take the list from the registry itself.
SEED_DATASETS = {"customer", "product", "brand", "orders", "order_line_item", "transactions", "web_analytics"}


def _base() -> dict:
    return yaml.safe_load(REGISTRY_FILE.read_text())


def _parse(data: dict):
    return parse_registry(yaml.safe_dump(data), source="test.yaml")


def test_registry_declares_every_seed_dataset():
    reg = load_registry()
    assert SEED_DATASETS <= set(reg.datasets)
    for ds in reg.datasets.values():
        assert ds.owner and ds.cadence.schedule and ds.contract and ds.outputs
        assert set(ds.business_key) <= set(ds.column_names)


def test_seed_cadences():
    reg = load_registry()
    assert cadence_label(reg["customer"].cadence.schedule) == "daily"
    assert cadence_label(reg["transactions"].cadence.schedule) == "daily"
    assert cadence_label(reg["web_analytics"].cadence.schedule) == "hourly"
    assert cadence_label(reg["product"].cadence.schedule) == "weekly"
    assert cadence_label(reg["brand"].cadence.schedule) == "weekly"
    assert cadence_label(reg["brand"].cadence.full_refresh_schedule) == "monthly"
    assert cadence_label(reg["orders"].cadence.schedule) == "every_15_minutes"


def test_unknown_key_is_rejected_with_its_path():
    data = _base()
    data["datasets"]["customer"]["sourse"] = {"system": "redshift"}
    with pytest.raises(RegistryError, match=r"datasets\.customer\.sourse: Extra inputs are not permitted"):
        _parse(data)


def test_unknown_column_key_is_rejected():
    data = _base()
    data["datasets"]["customer"]["columns"][0]["nulable"] = False
    with pytest.raises(RegistryError, match=r"datasets\.customer\.columns\.0\.nulable"):
        _parse(data)


def test_business_key_must_be_a_column():
    data = _base()
    data["datasets"]["customer"]["business_key"] = ["cust_id"]
    with pytest.raises(RegistryError, match=r"business_key names columns that are not declared: \['cust_id'\]"):
        _parse(data)


def test_an_index_must_name_declared_columns():
    data = _base()
    data["datasets"]["customer"]["outputs"] = [{"table": "c360.customer", "indexes": [["updated_at"], ["updatd"]]}]
    with pytest.raises(RegistryError, match=r"outputs\[0\]\.indexes names columns that are not declared: \['updatd'\]"):
        _parse(data)


def test_schedule_must_be_cron():
    data = _base()
    data["datasets"]["customer"]["cadence"]["schedule"] = "every day"
    with pytest.raises(RegistryError, match="'every day' is not a cron expression"):
        _parse(data)


def test_active_dataset_needs_its_contract_file():
    data = copy.deepcopy(_base())
    data["datasets"]["customer"]["contract"] = "quality/nope.yml"
    with pytest.raises(RegistryError, match=r"contract: file .*quality/nope.yml does not exist"):
        _parse(data)


def test_bad_column_type_is_rejected():
    data = _base()
    data["datasets"]["customer"]["columns"][1]["type"] = "varchar"
    with pytest.raises(RegistryError, match=r"columns\.1\.type"):
        _parse(data)


def test_models_are_frozen():
    ds = load_registry()["customer"]
    with pytest.raises(Exception, match="frozen"):
        ds.owner = "someone"


def test_web_analytics_is_an_optional_input_of_customer_360():
    d = load_registry().derived["customer_360"]
    assert d.optional_inputs == ("web_analytics",)
    assert load_registry().unavailable_inputs(d) == []  # active: waited for once it has published


def test_a_disabled_optional_input_is_one_a_run_goes_without():
    data = _base()
    data["datasets"]["web_analytics"]["status"] = "disabled"
    reg = _parse(data)
    assert reg["web_analytics"].status == "disabled" and reg["web_analytics"] not in reg.active()
    assert reg.unavailable_inputs(reg.derived["customer_360"]) == ["web_analytics"]


def test_a_derived_product_cannot_require_a_disabled_dataset():
    data = _base()
    data["datasets"]["web_analytics"]["status"] = "disabled"
    data["derived"]["customer_360"]["optional_inputs"] = []
    with pytest.raises(RegistryError, match=r"\n  derived\.customer_360\.inputs: web_analytics is disabled, and a run "
                                            r"would wait for it forever: list it in derived\.customer_360\.optional_inputs"):
        _parse(data)


def test_optional_inputs_must_be_inputs():
    data = _base()
    data["derived"]["customer_360"]["optional_inputs"] = ["web_analytic"]
    with pytest.raises(RegistryError, match=r"derived\.customer_360: Value error, optional_inputs \['web_analytic'\] "
                                            r"are not among its inputs"):
        _parse(data)


def test_an_unknown_status_is_rejected():
    data = _base()
    data["datasets"]["web_analytics"]["status"] = "off"
    with pytest.raises(RegistryError, match=r"datasets\.web_analytics\.status: Input should be 'active', 'planned' or "
                                            r"'disabled'"):
        _parse(data)


# ---- erasure links and retention (c360.erasure, c360.retention) ----------------------------------------------


def test_every_published_table_with_pii_or_a_person_says_how_its_rows_belong_to_one():
    reg = load_registry()
    for entry in reg.published():
        if any(c.pii for c in entry.columns):
            assert entry.erasure, entry.table
    # every table holding a customer id or an order of one is erasable
    linked = {e.table for e in reg.published() if e.erasure}
    assert linked == {"c360.customer", "c360.orders", "c360.order_line_item", "c360.transactions",
                      "c360.web_activity", "c360.orders_enriched", "c360.rfm_history",
                      "c360.segment_membership_history", "c360.customer_profile"}
    assert [(link.column, link.via) for link in reg["order_line_item"].erasure] == [("order_id", "orders")]


def _erasure_error(change, pattern: str) -> None:
    data = _base()
    change(data)
    with pytest.raises(RegistryError, match=pattern):
        _parse(data)


def test_pii_without_an_erasure_link_is_rejected():
    _erasure_error(lambda d: d["datasets"]["customer"].pop("erasure"),
                   r"datasets\.customer: Value error, columns \['first_name', .*\] are PII but no erasure link")


def test_an_erasure_link_names_a_declared_column_and_one_kind_of_link():
    _erasure_error(lambda d: d["datasets"]["orders"].update(erasure=[{"column": "client_id", "holds": "customer_id"}]),
                   r"datasets\.orders: Value error, erasure names column 'client_id', which is not declared")
    _erasure_error(lambda d: d["datasets"]["orders"].update(
        erasure=[{"column": "customer_id", "holds": "customer_id", "via": "customer"}]),
        r"name exactly one of 'holds' .* or 'via'")
    _erasure_error(lambda d: d["datasets"]["orders"].update(erasure=[{"column": "customer_id", "holds": "email"}]),
                   r"datasets\.orders\.erasure\.0\.holds")
    _erasure_error(lambda d: d["datasets"]["orders"].update(erasure=[{"column": "total_amount", "holds": "customer_id"}]),
                   r"erasure: column 'total_amount' is double; a link is matched on string columns")


def test_a_via_link_names_a_linked_dataset_of_the_same_source():
    _erasure_error(lambda d: d["datasets"]["transactions"].update(erasure=[{"column": "order_id", "via": "order"}]),
                   r"datasets\.transactions\.erasure: via 'order' is no dataset of this registry")
    _erasure_error(lambda d: d["datasets"]["transactions"].update(erasure=[{"column": "order_id", "via": "product"}]),
                   r"via 'product', which declares no erasure link of its own")
    # orders come from the OLTP source; customer from Redshift: the extract could not join them
    _erasure_error(lambda d: d["datasets"]["orders"].update(erasure=[{"column": "customer_id", "via": "customer"}]),
                   r"datasets\.orders\.erasure: via 'customer' comes from another source connection")

    def circle(d):
        d["datasets"]["orders"]["erasure"] = [{"column": "order_id", "via": "order_line_item"}]
    _erasure_error(circle, r"a circle of 'via' links")


def test_retention_days_are_positive_and_only_on_history_outputs():
    _erasure_error(lambda d: d["datasets"]["orders"].update(retention_days=0),
                   r"datasets\.orders\.retention_days: Input should be greater than or equal to 1")

    def on_profile(d):
        d["derived"]["customer_360"]["outputs"][3]["retention_days"] = 30
    _erasure_error(on_profile, r"retention_days: only a history output has partitions to drop")
    reg = load_registry()
    assert reg["product"].retention_days is None  # kept forever
    assert {o.name: o.retention_days for o in reg.derived["customer_360"].outputs if o.history} == {
        "rfm": 730, "segment_membership": 730}
