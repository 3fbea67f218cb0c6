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
