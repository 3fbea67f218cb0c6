"""Governance from the registry without a database: the rules each role's views are made from, the registry's
validation of the governance section (errors name the field), the README's table, the lineage tags and the steward
page's PII table (the database side: tests/integration/test_governance.py)."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from c360 import governance, lineage, settings
from c360.registry import REGISTRY_FILE, RegistryError, load_registry, parse_registry

REGISTRY = load_registry()
G = REGISTRY.governance


def _base() -> dict:
    return yaml.safe_load(REGISTRY_FILE.read_text())


def _parse(data: dict):
    return parse_registry(yaml.safe_dump(data), source="test.yaml")


def _column(data: dict, dataset: str, name: str) -> dict:
    return next(c for c in data["datasets"][dataset]["columns"] if c["name"] == name)


def test_the_seed_roles_are_declared():
    assert {r.name: (r.access, r.view_schema, r.pii, r.member_of) for r in G.roles.values()} == {
        "c360_steward": ("full", None, None, None),
        "c360_producer": ("full", None, None, None),
        "c360_marketing": (None, "marketing", "raw", None),
        "c360_consumer": (None, "consumer", "sha256", None),
        "c360_marketing_ca": (None, None, None, "c360_marketing"),
    }
    assert [(p.role, p.column, p.values) for p in G.row_policies] == [
        ("c360_marketing", "consent_marketing", ("true",)), ("c360_marketing_ca", "state", ("California",))]


@pytest.mark.parametrize(("role", "column", "expected"), [
    ("c360_steward", "date_of_birth", "raw"),
    ("c360_producer", "annual_income", "raw"),
    ("c360_marketing", "first_name", "raw"),
    ("c360_marketing", "age", "age_range"),
    ("c360_marketing", "annual_income", "income_range"),
    ("c360_marketing", "date_of_birth", "hidden"),
    ("c360_marketing_ca", "age", "age_range"),  # a member sees as its parent
    ("c360_marketing_ca", "date_of_birth", "hidden"),
    ("c360_consumer", "email_address", "sha256"),
    ("c360_consumer", "age", "sha256"),
    ("c360_consumer", "state", "raw"),  # not PII
    ("c360_marketing", "customer_id", "raw"),
])
def test_rule(role, column, expected):
    c = next(c for c in REGISTRY["customer"].columns if c.name == column)
    assert governance.rule(G, role, c) == expected


def test_every_seed_pii_attribute_is_marked():
    """Seed 002: names, contact details, birth date, income, address; age and income are the marketing ranges."""
    pii = {c.name for c in REGISTRY["customer"].columns if c.pii}
    assert {"first_name", "last_name", "phone_number", "email_address", "date_of_birth", "age", "annual_income",
            "mailing_street", "zipcode"} <= pii
    assert {c.name for c in REGISTRY["orders"].columns if c.pii} == {"billing_address", "shipping_address"}
    profile = next(o for d in REGISTRY.derived.values() for o in d.outputs if o.name == "customer_profile")
    assert {"emails", "phones", "first_name", "last_name", "age"} <= {c.name for c in profile.columns if c.pii}


def test_a_consumer_view_hashes_every_pii_column_of_every_published_table():
    """The SQL of each consumer view's columns, from the registry: a PII column is the salted SHA-256, another is
    itself (a document: with its PII copies replaced)."""
    consumer = G.roles["c360_consumer"]
    for entry in REGISTRY.published():
        for c in entry.columns:
            expr = governance.column_sql(G, consumer, entry, c).as_string(None)
            if c.pii:
                assert expr.startswith("governance.pii_sha256") and "governance.pii_salt" in expr, (entry.table, c)
            elif not c.embeds:
                assert expr == f't."{c.name}"', (entry.table, c.name)
        assert governance.view_query(G, consumer, entry).as_string(None).endswith(
            f'from "{entry.table.split(".")[0]}"."{entry.table.split(".")[1]}" as t')


def test_marketing_views_leave_the_birth_date_out_and_range_age_and_income():
    query = governance.view_query(G, G.roles["c360_marketing"], REGISTRY["customer"]).as_string(None)
    assert '"date_of_birth"' not in query
    assert 'governance.age_range(t."age") as "age"' in query
    assert 'governance.income_range(t."annual_income"::text) as "annual_income"' in query


def test_a_document_shows_each_embedded_copy_as_its_column():
    profile = next(o for d in REGISTRY.derived.values() for o in d.outputs if o.name == "customer_profile")
    doc = next(c for c in profile.columns if c.name == "profile")
    consumer = governance.column_sql(G, G.roles["c360_consumer"], profile, doc).as_string(None)
    for path, name in doc.embeds.items():
        target = next(c for c in profile.columns if c.name == name)
        assert (f"'{governance.json_path(path)}'" in consumer) == target.pii, path
    marketing = governance.column_sql(G, G.roles["c360_marketing"], profile, doc).as_string(None)
    assert "'{demographics,age}'::text[], coalesce(to_jsonb(governance.age_range(" in marketing
    assert "identities" not in marketing  # marketing sees emails and phones as they are
    assert governance.column_sql(G, G.roles["c360_steward"], profile, doc).as_string(None) == 't."profile"'


def test_row_policies_follow_the_customer_into_tables_without_the_column():
    orders = governance.row_predicate(G, REGISTRY["orders"], "c360.customer").as_string(None)
    assert orders.count("governance.row_subjects(current_user)") == 1 and '"customer_id"::text in' in orders
    web = governance.row_predicate(G, REGISTRY["web_analytics"], "c360.customer").as_string(None)
    assert '"entity_id"::text in (select governance.row_subjects(current_user))' in web
    customer = governance.row_predicate(G, REGISTRY["customer"], "c360.customer").as_string(None)
    assert "row_subjects" not in customer and '"state"::text = any' in customer
    assert '"consent_marketing"::text = any' in customer
    # a table about no customer is not restricted
    assert governance.row_predicate(G, REGISTRY["product"], "c360.customer").as_string(None) == "true"


def test_readme_holds_the_generated_table():
    readme = (settings.PROJECT_DIR / "README.md").read_text()
    found = re.search(re.escape(governance.README_BEGIN) + ".*?" + re.escape(governance.README_END), readme, re.S)
    assert found and found.group(0) == governance.readme_table(), (
        "README's governance table is not the registry's; replace it with c360.governance.readme_table()")


def test_the_readme_table_has_a_row_per_pii_column_and_embedded_copy():
    table = governance.readme_table()
    expected = sum(len(governance.pii_rows(G, e)) for e in REGISTRY.published())
    assert table.count("\n| `c360.") == expected
    assert "| `c360.customer` | `date_of_birth` | as is | as is | not visible | SHA-256 | not visible |" in table
    assert "| `c360.customer_profile` | `profile.demographics.age` |" in table


def test_lineage_tags_pii_columns_and_documents_holding_copies():
    profile = next(o for d in REGISTRY.derived.values() for o in d.outputs if o.name == "customer_profile")
    tags = lineage.pii_facets(profile.columns)["tags"].tags
    assert {(t.field, t.value) for t in tags} == {
        *((c.name, "true") for c in profile.columns if c.pii), ("profile", "embedded")}
    assert all(t.key == "pii" and t.source == "c360 registry" for t in tags)
    assert lineage.pii_facets(REGISTRY["product"].columns) == {}
    fields = {f.name: f.description for f in lineage.schema_facet(
        [(c.name, c.type) for c in REGISTRY["customer"].columns], REGISTRY["customer"].columns).fields}
    assert fields["email_address"] == "PII" and fields["gender"] is None


def test_steward_page_data_names_each_pii_column_and_each_role(monkeypatch):
    from c360 import steward, steward_html

    entry = steward.entry_named("customer")
    data = steward_html.personal_data(entry)
    assert data["roles"] == list(G.roles)
    rows = {r["column"]: r["rules"] for r in data["pii_rows"]}
    assert rows["date_of_birth"] == {"c360_steward": "raw", "c360_producer": "raw", "c360_marketing": "hidden",
                                     "c360_consumer": "sha256", "c360_marketing_ca": "hidden"}
    assert data["reads"]["c360_consumer"] == "consumer.customer"
    assert data["reads"]["c360_steward"] == "c360.customer"


# ---- the registry validates the governance section ---------------------------------------------------------


def _invalid(mutate, message: str) -> None:
    data = _base()
    mutate(data)
    with pytest.raises(RegistryError, match=message):
        _parse(data)


def test_a_mask_needs_a_pii_column():
    _invalid(lambda d: _column(d, "customer", "gender").update(mask={"c360_marketing": "hidden"}),
             r"datasets\.customer\.columns\.3: Value error, mask is for PII columns")


def test_a_mask_names_governed_roles_only():
    _invalid(lambda d: _column(d, "customer", "first_name").update(mask={"c360_steward": "hidden"}),
             r"datasets\.customer\.columns\.first_name\.mask: \['c360_steward'\] are no governed roles")


def test_a_range_rule_needs_a_column_of_its_type():
    _invalid(lambda d: _column(d, "customer", "first_name").update(mask={"c360_marketing": "age_range"}),
             r"mask\.c360_marketing: age_range applies to \['bigint', 'int'\] columns, not string")


def test_an_unknown_rule_is_rejected_with_its_path():
    _invalid(lambda d: _column(d, "customer", "first_name").update(mask={"c360_marketing": "blur"}),
             r"datasets\.customer\.columns\.1\.mask\.c360_marketing: Input should be 'raw', 'sha256'")


def test_a_role_is_of_one_kind():
    def both(d):
        d["governance"]["roles"]["c360_consumer"]["access"] = "full"
    _invalid(both, r"governance\.roles\.c360_consumer: Value error, a role has exactly one of")


def test_a_member_role_needs_a_parent_with_a_schema():
    def bad(d):
        d["governance"]["roles"]["c360_marketing_ca"]["member_of"] = "c360_steward"
    _invalid(bad, r"roles\.c360_marketing_ca\.member_of: 'c360_steward' is no role with a schema")


def test_a_governed_schema_is_not_a_warehouse_schema():
    def bad(d):
        d["governance"]["roles"]["c360_consumer"]["schema"] = "staging"
    _invalid(bad, r"governance\.roles\.c360_consumer: Value error, schema 'staging' is reserved")


def test_a_row_policy_is_on_a_column_of_the_subject_and_a_governed_role():
    def column(d):
        d["governance"]["row_policies"][1]["column"] = "shipping_address"
    _invalid(column, r"governance\.row_policies\.1\.column: 'shipping_address' is no column of the subject")

    def role(d):
        d["governance"]["row_policies"][1]["role"] = "c360_steward"
    _invalid(role, r"row_policies\.1\.role: 'c360_steward' is no governed role")


def test_embeds_name_columns_of_the_same_table():
    def bad(d):
        profile = next(o for o in d["derived"]["customer_360"]["outputs"] if o["name"] == "customer_profile")
        next(c for c in profile["columns"] if c["name"] == "profile")["embeds"]["demographics.shoeSize"] = "shoe_size"
    _invalid(bad, r"columns\.profile\.embeds names columns that are not declared: \['shoe_size'\]")


def test_a_registry_without_governance_parses():
    data = copy.deepcopy(_base())
    del data["governance"]
    for c in (c for ds in data["datasets"].values() for c in ds["columns"]):
        c.pop("mask", None)
    for o in data["derived"]["customer_360"]["outputs"]:
        for c in o["columns"]:
            c.pop("mask", None)
    assert _parse(data).governance is None
