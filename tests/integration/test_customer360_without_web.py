"""customer_360_daily for a retailer without web analytics (an optional input that never published), with
dag.test() on real PostgreSQL, Spark and Soda: the run does not wait for it, builds every output with the web
input empty, and publishes. Inputs are published from generated data as in test_customer360."""

from __future__ import annotations

import pytest
from helpers import create_published_tables, wh

from c360 import generator, products
from c360.registry import load_registry

from .test_customer360 import AS_OF, DERIVED, SCALE, _assert_published_with_scores, _publish_inputs, _run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def published(fresh_warehouse, dagbag):
    data = generator.generate(SCALE)
    _publish_inputs(data, AS_OF, web=False)
    # not waited for: without this, the sensor would hold the run (dag.test would never finish)
    assert products.absent_inputs(DERIVED) == ["web_analytics"]
    assert products.missing_inputs(DERIVED, AS_OF) == []
    return data, _run(dagbag, AS_OF)


def test_outputs_are_published_without_web_analytics(published):
    _, dr = published
    _assert_published_with_scores(dr)
    assert wh("select count(*) from quality.check_results where dag_run_id = %s and outcome = 'failed'",
              (dr.run_id,))[0][0] == 0
    # the run read no web table and created none; the lens views over web analytics are left out
    assert wh("select to_regclass('c360.web_activity'), to_regclass('c360.lens_product_views'), "
              "to_regclass('c360.lens_segment_customers') is not null")[0] == (None, None, True)


def test_profiles_have_no_sessions(published):
    """No sessions: no preferred channel, no devices, engagement from RFM alone (web part 0), no web audience."""
    (profiles, with_web, off_formula) = wh("""
        select count(*),
               count(*) filter (where preferred_channel is not null or device_ids <> '[]'::jsonb
                                or profile -> 'engagement' ->> 'preferredChannel' is not null),
               -- engagement score = round(100 * 0.6 * (R+F+M-3)/12) with no sessions (3 when unscored)
               count(*) filter (where engagement_score <> round(100 * 0.6 * (coalesce(r_score + f_score + m_score, 3) - 3) / 12))
        from c360.customer_profile""")[0]
    assert profiles > 1000 and with_web == 0 and off_formula == 0
    assert wh("select count(*) from c360.customer_profile where engagement_score > 0")[0][0] > 0
    segments = {s for (s,) in wh("select distinct segment_name from c360.segment")}
    assert "Frequent Cart Abandoner" not in segments and "Champions" in segments


def test_once_web_analytics_has_a_table_it_is_waited_for(published):
    """An optional input that is active and has published is an input like the others."""
    create_published_tables([load_registry()["web_analytics"]])
    assert products.absent_inputs(DERIVED) == []
    assert [m.split(" ")[0] for m in products.missing_inputs(DERIVED, AS_OF)] == ["web_analytics"]
