"""The steward quality page in the running Airflow: JSON API (authenticated only) and the page in real
headless Chromium (Debian's chromium + chromium-driver), logged in through Airflow's own login form."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest

from c360 import quality, settings
from c360.steps import Interval

pytestmark = pytest.mark.e2e

DATASET, DAG_ID = "product", "product_weekly"
RUNS = [  # two scored runs of product: the trend goes 100 → 75, the latest has a failed and a warned check
    ("scheduled__2026-11-02T02:00:00+00:00", datetime(2026, 11, 2, 2, tzinfo=UTC), datetime(2026, 11, 9, 2, tzinfo=UTC),
     [("schema matches the registry", "passed", None), ("uniqueness - product id", "passed", None)]),
    ("scheduled__2026-11-09T02:00:00+00:00", datetime(2026, 11, 9, 2, tzinfo=UTC), datetime(2026, 11, 16, 2, tzinfo=UTC),
     [("schema matches the registry", "passed", None), ("uniqueness - product id", "passed", None),
      ("missing values - description", "warned", 2.5), ("consistency - category", "failed", 12.0)]),
]


@pytest.fixture(scope="module")
def seeded(airflow):
    for run_id, start, end, checks in RUNS:
        results = [quality.CheckResult(name, None, outcome, value, "must be < 5 (warn: must be 0)",
                                       "blocking" if outcome == "failed" else "warning")
                   for name, outcome, value in checks]
        quality.record(DATASET, Interval(start, end, run_id, DAG_ID), results)
    return airflow


def _get(url: str, token: str | None = None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("path", ["/c360-quality/", "/c360-quality/api/datasets",
                                  "/c360-quality/api/datasets/product/scores"])
def test_every_route_requires_an_authenticated_user(seeded, path):
    status, _ = _get(seeded.url + path)
    assert status == 401
    status, _ = _get(seeded.url + path, token="not-a-token")
    assert status in (401, 403)
    status, _ = _get(seeded.url + path, token=seeded.token)
    assert status == 200


def test_api_reports_latest_score_against_cadence_and_failing_checks(seeded):
    from c360.steward import catalogue

    status, body = _get(seeded.url + "/c360-quality/api/datasets", seeded.token)
    datasets = {d["name"]: d for d in json.loads(body)}
    assert set(datasets) == {e.name for e in catalogue()}
    product = datasets[DATASET]
    assert product["latest"]["score"] == 50.0 and product["latest"]["dag_run_id"] == RUNS[1][0]
    assert product["cadence"] == "weekly" and product["dag_id"] == DAG_ID
    # the last Monday 02:00 before now is after 2026-11-16 02:00: the latest expected run is missing
    assert product["missing_latest_run"] is (datetime.now(UTC) > datetime(2026, 11, 23, 2, tzinfo=UTC))
    failing = {c["check"]: c for c in product["failing_checks"]}
    assert set(failing) == {"missing values - description", "consistency - category"}
    assert failing["consistency - category"]["measured"] == 12.0 and failing["consistency - category"]["outcome"] == "failed"
    assert failing["consistency - category"]["expected"] == "must be < 5 (warn: must be 0)"
    assert product["run_url"] == f"dags/{DAG_ID}/runs/{RUNS[1][0]}"
    _, body = _get(seeded.url + f"/c360-quality/api/datasets/{DATASET}/scores", seeded.token)
    assert [(p["dag_run_id"], p["score"]) for p in json.loads(body)] == [(RUNS[0][0], 100.0), (RUNS[1][0], 50.0)]
    status, _ = _get(seeded.url + "/c360-quality/api/datasets/nope/scores", seeded.token)
    assert status == 404


def test_the_page_is_a_menu_entry_of_the_airflow_ui(seeded):
    plugins = seeded.get("/api/v2/plugins")["plugins"]
    mine = next(p for p in plugins if p["name"] == "c360_steward")
    views = mine["external_views"]
    assert [(v["name"], v["destination"], v["href"]) for v in views] == [("Data quality", "nav", "c360-quality/")]
    assert mine["fastapi_apps"][0]["url_prefix"] == "/c360-quality"


def _chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        pytest.fail("Debian's chromium and chromium-driver are required (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_steward_page_in_headless_chromium(seeded):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from c360 import cli

    artifacts = settings.PROJECT_DIR / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    browser = _chromium()
    try:
        wait = WebDriverWait(browser, 60)
        browser.get(seeded.url + "/plugin/c360-quality")  # the UI sends an anonymous visitor to its login form
        wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
        browser.find_element(By.NAME, "password").send_keys(cli.admin_password())
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda b: "/auth/" not in b.current_url)
        browser.get(seeded.url + "/plugin/c360-quality")
        frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe")))
        assert "c360-quality" in frame.get_attribute("src")
        browser.switch_to.frame(frame)
        row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-dataset="{DATASET}"]')))
        text = row.text
        assert "50.00" in text and DAG_ID in text
        assert "consistency - category (failed, blocking): measured 12, expected must be < 5" in text
        assert row.find_element(By.CSS_SELECTOR, "svg.trend").get_attribute("aria-label") == \
            "score trend: 2 runs, from 100 to 50"
        link = row.find_element(By.LINK_TEXT, RUNS[1][0]).get_attribute("href")
        assert link == f"{seeded.url}/dags/{DAG_ID}/runs/{RUNS[1][0]}"
        browser.switch_to.default_content()
        browser.save_screenshot(str(artifacts / "steward_page.png"))
    finally:
        browser.quit()
    assert (artifacts / "steward_page.png").stat().st_size > 10_000
