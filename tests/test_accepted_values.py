"""Accepted value lists: one file, referenced by the contracts, overridable by a deployment."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from c360 import accepted_values, quality, settings

CONTRACTS = sorted(p for p in settings.QUALITY_DIR.glob("*.yml") if p != accepted_values.DEFAULT_FILE)


@pytest.fixture(autouse=True)
def _no_deployment_file(monkeypatch):
    monkeypatch.delenv(accepted_values.ENV_VAR, raising=False)


def _valid_values(obj, where=""):
    """(path, value) of every valid_values key in a parsed contract."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            path = f"{where}.{k}" if where else str(k)
            if k == "valid_values":
                yield path, v
            yield from _valid_values(v, path)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _valid_values(v, f"{where}.{i}")


def _check(contract_text: str, column: str) -> dict:
    (col,) = [c for c in yaml.safe_load(contract_text)["columns"] if c["name"] == column]
    (check,) = [c["invalid"] for c in col["checks"] if "invalid" in c]
    return check


def test_no_contract_types_a_value_list():
    literal = {}
    for path in CONTRACTS:
        for where, value in _valid_values(yaml.safe_load(path.read_text())):
            if not (isinstance(value, str) and accepted_values.REFERENCE.fullmatch(value)):
                literal[f"{path.name}: {where}"] = value
    assert literal == {}, "valid_values must reference quality/accepted_values.yml"
    assert any(True for p in CONTRACTS for _ in _valid_values(yaml.safe_load(p.read_text())))


def test_every_list_is_referenced_by_a_contract():
    used = set().union(*(accepted_values.references(yaml.safe_load(p.read_text())) for p in CONTRACTS))
    assert used == set(accepted_values.load())


def test_the_contract_soda_runs_holds_the_list():
    check = _check(quality.contract_for(settings.QUALITY_DIR / "product.yml", "staging.batch"), "product_category")
    assert check["valid_values"] == ["Apparel", "Footwear", "Home", "Electronics", "Baby", "Beauty"]
    assert check["threshold"]["must_be_less_than"] == 5  # the rest of the check is kept


def _deployment_file(monkeypatch, tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deployment_values.yml"
    path.write_text(text)
    monkeypatch.setenv(accepted_values.ENV_VAR, str(path))
    return path


def test_a_deployment_file_replaces_the_lists_it_names(monkeypatch, tmp_path):
    defaults = accepted_values.load()
    _deployment_file(monkeypatch, tmp_path, "product_category: [Apparel, Footwear, Home, Music]\n")
    lists = accepted_values.load()
    assert lists["product_category"] == ["Apparel", "Footwear", "Home", "Music"]
    assert {k: v for k, v in lists.items() if k != "product_category"} == \
        {k: v for k, v in defaults.items() if k != "product_category"}
    check = _check(quality.contract_for(settings.QUALITY_DIR / "product.yml", "staging.batch"), "product_category")
    assert check["valid_values"] == ["Apparel", "Footwear", "Home", "Music"]


def test_a_misspelt_list_name_fails_the_gate(monkeypatch, tmp_path):
    path = _deployment_file(monkeypatch, tmp_path, "product_categories: [Music]\n")
    with pytest.raises(quality.QualityCheckError,
                       match=rf"{path} \(C360_ACCEPTED_VALUES\): \['product_categories'\] are not accepted value lists"):
        quality.contract_for(settings.QUALITY_DIR / "product.yml", "staging.batch")


def test_a_missing_deployment_file_fails_with_its_path(monkeypatch, tmp_path):
    monkeypatch.setenv(accepted_values.ENV_VAR, str(tmp_path / "nope.yml"))
    with pytest.raises(quality.QualityCheckError, match=r"nope\.yml: No such file"):
        quality.contract_for(settings.QUALITY_DIR / "customer.yml")


def test_a_yaml_boolean_is_no_accepted_value(monkeypatch, tmp_path):
    path = _deployment_file(monkeypatch, tmp_path, "gender: [M, F, on, off]\n")
    with pytest.raises(accepted_values.AcceptedValuesError, match=rf"{path}: gender\.2: True is no text or number"):
        accepted_values.load()


def test_a_reference_to_an_undefined_list_names_its_place(tmp_path):
    contract = tmp_path / "c.yml"
    contract.write_text("dataset: c360_warehouse/c360/staging/x\ncolumns:\n- name: a\n  checks:\n"
                        "  - invalid:\n      valid_values: ${var.ACCEPTED_colour}\n")
    with pytest.raises(quality.QualityCheckError,
                       match=r"c\.yml: columns\.0\.checks\.0\.invalid\.valid_values: no accepted value list 'colour'"):
        quality.contract_for(contract, "staging.batch")
