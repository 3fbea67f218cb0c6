"""c360.erasure's pure parts: which rows of a file are a person's, GA lines, identity normalisation, hashes."""

from __future__ import annotations

import json

import pyarrow as pa

from c360 import erasure
from c360.registry import load_registry

PERSON = erasure.Person(customer_id={"C00000001", "D00000007"}, visitor_id={"V0000000042"},
                        emails={"ann.lee1@mail.example"}, phones={"5550001234"}, keys={"orders": {"O00000005"}})


def _output(name: str):
    return next(o for o in load_registry().derived["customer_360"].outputs if o.name == name)


def _mask(table: pa.Table, entry, **kw) -> list[bool] | None:
    m = erasure.arrow_mask(table, entry, PERSON, **kw)
    return None if m is None else m.to_pylist()


def test_a_customer_id_column_matches_exactly():
    t = pa.table({"customer_id": ["C00000001", "C000000010", None, "D00000007"], "x": [1, 2, 3, 4]})
    assert _mask(t, load_registry()["customer"]) == [True, False, False, True]


def test_a_via_link_matches_the_linked_keys():
    t = pa.table({"order_li_id": ["L1", "L2"], "order_id": ["O00000005", "O00000050"]})
    assert _mask(t, load_registry()["order_line_item"]) == [True, False]


def test_web_rows_match_by_customer_or_by_the_visitor_of_the_session():
    t = pa.table({"entity_id": ["C00000001", None, None], "session_id": ["V1-1", "V0000000042-9", "V0000000043-1"]})
    assert _mask(t, load_registry()["web_analytics"]) == [True, True, False]


def test_a_json_list_matches_any_member_and_only_whole_ids():
    t = pa.table({"customer_ids": ['["C00000001","C00000002"]', '["C000000011"]', '["D00000007"]'],
                  "device_ids": ["[]", "[]", "[]"]})
    assert _mask(t, _output("customer_profile")) == [True, False, True]


def test_a_file_without_any_link_column_is_not_the_persons():
    assert _mask(pa.table({"brand_id": ["B1"]}), load_registry()["customer"]) is None


def test_quarantined_ga_lines_match_by_their_visitor():
    lines = ['{"fullVisitorId":"V0000000042","visitId":1}', '{"fullVisitorId":"V0000000042","vis',
             '{"fullVisitorId":"V1"}', "not json"]
    t = pa.table({"value": lines, "_reject_reason": ["x"] * 4})
    assert _mask(t, load_registry()["web_analytics"], ga_lines=True) == [True, True, False, False]


def test_a_visitor_map_drops_rows_naming_the_person():
    t = pa.table({"fullVisitorId": ["V0000000042", "V2", "V3"], "customer_id": ["C9", "D00000007", "C8"]})
    assert _mask(t, None) == [True, True, False]


def test_ga_export_lines_are_filtered_by_visitor_with_line_ends_kept():
    data = b'{"fullVisitorId":"V0000000042"}\r\n{"fullVisitorId":"V2"}\n\n{"fullVisitorId": "V0000000042", "x\n'
    kept, dropped = erasure.filter_lines(data, lambda line: erasure.line_visitor(line) in PERSON.visitor_id)
    assert (kept, dropped) == (b'{"fullVisitorId":"V2"}\n\n', 2)
    assert erasure.line_visitor(b'{"a":1,"fullVisitorId":"V\\u0031"}') == "V1"
    assert erasure.line_visitor(b"garbage") is None


def test_emails_and_phones_are_normalised_as_identity_resolution_does():
    assert erasure.normalise_email("  Ann.Lee1@MAIL.example ") == "ann.lee1@mail.example"
    assert erasure.normalise_email("no at sign") is None
    assert erasure.normalise_phone("(555) 0001234") == erasure.normalise_phone("+1-555-0001234") == "5550001234"
    assert erasure.normalise_phone("12-34") is None


def test_the_person_round_trips_and_summarises_without_identifiers():
    again = erasure.Person.from_json(json.loads(PERSON.to_json()))
    assert again == PERSON
    summary = PERSON.summary()
    assert summary == {"customer_ids": 2, "visitor_ids": 1, "emails": 1, "phones": 1, "orders_keys": 1}
    assert "C00000001" not in json.dumps(summary)


def test_hashes_are_salted_sha256_hex():
    h = erasure.digest("salt", "C00000001")
    assert len(h) == 64 and h != erasure.digest("other", "C00000001") and h == erasure.digest("salt", "C00000001")


def test_batch_tables_are_attributed_to_their_registry_entry():
    owners = erasure.batch_owners(load_registry())
    assert owners["customer_daily"].name == "customer"
    assert owners["brand_monthly_full_refresh"].name == "brand"
    assert owners["customer_360_customer_profile"].table == "c360.customer_profile"


def test_the_extract_filter_is_the_links_in_the_sources_sql(monkeypatch):
    """A line item is left in the source when the order it belongs to is a suppressed customer's: the orders
    source table joined there, every id compared by its salted hash; values bound, never in the SQL text."""
    registry = load_registry()
    monkeypatch.setattr(erasure, "suppressed", lambda: ("s4lt", {"customer_id": ["ab" * 32]}))
    kept, params = erasure.extract_filter(registry["order_line_item"], registry)
    text = kept.as_string(None)
    assert text == (
        '((exists (select 1 from "orders" as "erasure_via_0_0" where "erasure_via_0_0"."order_id" = '
        '"order_line_item"."order_id" and (encode(sha256(convert_to(%(erasure_salt)s::text || '
        '"erasure_via_0_0"."customer_id"::text, \'UTF8\')), \'hex\') = any(%(erasure_customer_id)s::text[])))) '
        'is not true)')
    assert params == {"erasure_salt": "s4lt", "erasure_customer_id": ["ab" * 32]}
    # nobody suppressed, or a dataset no row of which is anyone's: every row is kept
    assert erasure.extract_filter(registry["product"], registry)[0].as_string(None) == "true"
    monkeypatch.setattr(erasure, "suppressed", lambda: ("", {}))
    kept, params = erasure.extract_filter(registry["customer"], registry)
    assert (kept.as_string(None), params) == ("true", {})


def test_the_warehouse_condition_of_each_kind_of_link():
    text, params = erasure.linked(_output("customer_profile"), PERSON)
    assert text.as_string(None) == ('("customer_ids" ?| %(erasure_0)s::text[] or '
                                    '"device_ids" ?| %(erasure_1)s::text[])')
    assert params == {"erasure_0": ["C00000001", "D00000007"], "erasure_1": ["V0000000042"]}
    text, params = erasure.linked(load_registry()["web_analytics"], PERSON, columns={"session_id"})
    assert text.as_string(None) == '(split_part("session_id", %(erasure_1_sep)s, 1) = any(%(erasure_1)s::text[]))'
    assert params == {"erasure_1": ["V0000000042"], "erasure_1_sep": "-"}
    assert erasure.linked(load_registry()["customer"], PERSON, columns={"other"}) == (None, {})
