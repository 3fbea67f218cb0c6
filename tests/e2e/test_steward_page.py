"""The steward quality page in the running Airflow, used as a steward would: logged in through Airflow's own
form in real headless Chromium (Debian's chromium + chromium-driver), opened from the menu, links clicked
inside Airflow's iframe, and the JSON API over REST (authenticated only).

The state is what `make demo` leaves and then some: every DAG paused; runs started by ``dag.test()`` for past
intervals (tasks marked successful, nothing extracted); quality results recorded by the gate's own
``quality.save_results`` and publishes logged by the publish step's SQL. At a glance, for the latest interval each
schedule expects:

* transactions (daily): ran and **blocked** (a blocking check failed; the last good run was the day before,
  and the interval before that has no run: a gap); rerun later in the module, it passes and publishes, and
  the blocked attempt stays in the history;
* product (weekly): ran and **published with warnings**;
* brand (weekly): **nothing ran** (paused; its latest run was a ``dag.test()`` of the week before).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from c360 import pg, quality, runs, services, settings, steward
from c360.warehouse import Interval, sql_file

pytestmark = pytest.mark.e2e

NOW = datetime.now(UTC)
ARTIFACTS = settings.PROJECT_DIR / "test-artifacts"
TX, PRODUCT, BRAND = "transactions", "product", "brand"
TX_DAG, PRODUCT_DAG, BRAND_DAG = "transactions_daily", "product_weekly", "brand_weekly"
BLOCKING = "accuracy - transaction amount"


def _entry(name: str) -> steward.Entry:
    return next(e for e in steward.catalogue() if e.name == name)


def _expected(name: str) -> datetime:
    return steward.expected_interval_end(_entry(name).schedule, NOW)


def _checks(name: str, warned: tuple[str, ...] = (), failed: tuple[str, ...] = ()) -> list[quality.CheckResult]:
    """One result per check of the dataset's contract: passed, unless named among ``warned`` or ``failed``."""
    names = list(steward.contract_docs(_entry(name).contract_path))
    assert set(warned) | set(failed) <= set(names)
    results = []
    for check in names:
        if check in failed:
            results.append(quality.CheckResult(check, "amount", "failed", 12.0, "level: fail must be: 0", "blocking",
                                               unit="rows", diagnostics={"invalid_count": 24, "check_rows_tested": 200}))
        elif check in warned:
            results.append(quality.CheckResult(check, "order_id", "warned", 1.5, "level: fail must be less than: 5; "
                                               "level: warn must be: 0", "warning",
                                               unit="%", diagnostics={"missing_count": 3, "check_rows_tested": 200}))
        else:
            results.append(quality.CheckResult(check, None, "passed", 0.0, "level: fail must be: 0", "blocking"))
    return results


def _publish(name: str, table: str, interval: Interval, rows: int) -> None:
    """What the publish step logs (the same statement), without touching a table."""
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute(sql_file("warehouse/publish_log.sql"), {
            "dataset": name, "table": table, "start": interval.start, "end": interval.end,
            "run_id": interval.run_id, "mode": "incremental", "batch_rows": rows, "rows": rows})


def _quarantine(name: str, start: datetime, reasons: list[str]) -> None:
    """A quarantine partition as the stage job leaves it (rows as raw strings, with their reason)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from c360 import lake

    folder = lake.local_path(lake.uri("quarantine", name, start))
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"transaction_id": [f"t{i}" for i in range(len(reasons))], "_reject_reason": reasons,
                             "_source_file": ["raw"] * len(reasons)}), folder / "part-00000.snappy.parquet")


@pytest.fixture(scope="module")
def demo_runs(airflow):
    """Runs of past intervals started by dag.test(), as `make demo` starts them (its tasks marked successful
    here: nothing is extracted), through the demo's own runner."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(settings.DAGS_DIR))
    tx = runs.test_run(bag.dags[TX_DAG], _expected(TX), mark_success_pattern=".*")
    brand = runs.test_run(bag.dags[BRAND_DAG], _expected(BRAND) - timedelta(days=7), mark_success_pattern=".*")
    for dr in (tx, brand):
        assert str(dr.state) == "success"
    return {TX: tx, BRAND: brand}


def _interval(dr) -> Interval:
    return Interval(dr.data_interval_start, dr.data_interval_end, dr.run_id, dr.dag_id)


@pytest.fixture(scope="module")
def seeded(airflow, demo_runs):
    tx_end = _expected(TX)
    day = timedelta(days=1)
    warned = ("completeness - transaction details (order)",)  # the transactions contract has 9 checks
    for days_back, checks in ((3, _checks(TX)), (1, _checks(TX, warned=warned))):
        end = tx_end - days_back * day
        interval = Interval(end - day, end, f"scheduled__{(end - day).isoformat()}", TX_DAG)
        quality.save_results(TX, interval, checks)  # two days back: no run (a gap)
        _publish(TX, "c360.transactions", interval, 120)
    blocked = _interval(demo_runs[TX])  # the latest expected interval: blocked, 7 of 9 checks passed
    assert quality.save_results(TX, blocked, _checks(TX, warned=warned, failed=(BLOCKING,))) == 77.78
    _quarantine(TX, blocked.start, ["amount is not a number", "amount is not a number", "transaction_ts is missing"])

    p_end = _expected(PRODUCT)
    product = Interval(p_end - timedelta(days=7), p_end, f"scheduled__{(p_end - timedelta(days=7)).isoformat()}",
                       PRODUCT_DAG)
    quality.save_results(PRODUCT, product, _checks(PRODUCT, warned=("missing values - description",)))
    _publish(PRODUCT, "c360.product", product, 40)

    brand = _interval(demo_runs[BRAND])
    quality.save_results(BRAND, brand, _checks(BRAND))
    _publish(BRAND, "c360.brand", brand, 12)
    return airflow


def _get(url: str, token: str | None = None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _datasets(api) -> dict[str, dict]:
    status, body = _get(api.url + "/c360-quality/api/datasets", api.token)
    assert status == 200, body[:500]
    return {d["name"]: d for d in json.loads(body)}


# ---- REST ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/c360-quality/", "/c360-quality/api/datasets", "/c360-quality/api/datasets/product/scores",
    "/c360-quality/datasets/product", "/c360-quality/api/datasets/product/checks/uniqueness%20-%20product%20id",
    "/c360-quality/openapi.json", "/c360-quality/docs", "/c360-quality/redoc",
])
def test_every_route_requires_an_authenticated_user(seeded, path):
    status, body = _get(seeded.url + path)
    assert status == 401, body[:300]
    status, _ = _get(seeded.url + path, token="not-a-token")
    assert status in (401, 403)
    status, body = _get(seeded.url + path, token=seeded.token)
    assert status == 200, body[:300]
    if path.endswith("openapi.json"):
        assert "/api/datasets" in json.loads(body)["paths"]


def test_api_tells_blocked_from_published_from_nothing_ran(seeded):
    from c360.steward import catalogue

    datasets = _datasets(seeded)
    assert set(datasets) == {e.name for e in catalogue()}

    tx = datasets[TX]
    assert tx["state"] == "blocked" and tx["missing_latest_run"] is False
    assert tx["latest"]["score"] == 77.78 and tx["latest"]["outcome"] == "blocked"
    assert tx["last_good"]["interval_end"] == (_expected(TX) - timedelta(days=1)).isoformat()
    assert tx["last_good"]["score"] == 88.89  # 8 of 9 passed, one warned
    assert "was not published" in tx["explanation"] and "last good run" in tx["explanation"]
    failing = {c["check"]: c for c in tx["failing_checks"]}
    assert failing[BLOCKING]["outcome"] == "failed" and failing[BLOCKING]["measured"] == 12.0
    assert tx["quarantined_rows"] == 3

    product = datasets[PRODUCT]
    assert product["state"] == "published_with_warnings" and product["latest"]["outcome"] == "published"
    assert product["failing_checks"][0]["thresholds"] == "blocks at ≥ 10 % of rows; warns at any row"

    brand = datasets[BRAND]
    assert brand["state"] == "nothing_ran" and brand["missing_latest_run"] is True
    assert brand["last_good"]["score"] == 100.0
    assert "brand_weekly is paused" in brand["explanation"]
    assert "started by dag.test(), not the scheduler" in brand["explanation"]


def test_dag_test_runs_show_their_real_duration(seeded, demo_runs):
    """dag.test() starts its run at the logical date (days back): the demo runner sets the real start."""
    for name, dag_id in ((TX, TX_DAG), (BRAND, BRAND_DAG)):
        run_id = urllib.parse.quote(demo_runs[name].run_id, safe="")
        run = seeded.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        assert run["triggered_by"] == "test"
        assert 0 <= run["duration"] < 600, run  # seconds of work, not the days since the logical date


def test_the_page_is_a_menu_entry_of_the_airflow_ui(seeded):
    plugins = seeded.get("/api/v2/plugins")["plugins"]
    mine = next(p for p in plugins if p["name"] == "c360_steward")
    assert [(v["name"], v["destination"], v["href"], v["url_route"]) for v in mine["external_views"]] == [
        ("Data quality", "nav", "c360-quality/", "c360-quality")]
    assert mine["fastapi_apps"][0]["url_prefix"] == "/c360-quality"


# ---- the browser ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(seeded):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        pytest.fail("Debian's chromium and chromium-driver are required (.ci/run installs them)")
    ARTIFACTS.mkdir(exist_ok=True)
    profile = tempfile.mkdtemp(prefix="c360-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(arg)
    b = webdriver.Chrome(service=Service(driver), options=options)
    try:
        wait = WebDriverWait(b, 60)
        b.get(seeded.url + "/")  # the UI sends an anonymous visitor to its login form
        wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
        b.find_element(By.NAME, "password").send_keys(services.admin_password())
        b.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: "/auth/" not in d.current_url and d.find_elements(By.CSS_SELECTOR, "button[aria-label=Browse]"))
        yield b
    finally:
        b.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(b, seconds: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(b, seconds)


def _open_from_menu(b, url: str):
    """Home, then Browse → Data quality, as a user would; returns with the driver inside the page's iframe, and
    the iframe's sandbox."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    b.switch_to.default_content()
    b.get(url + "/")
    _wait(b).until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label=Browse]"))).click()
    _wait(b).until(ec.element_to_be_clickable((By.XPATH, "//*[@role='menuitem'][normalize-space()='Data quality']"))
                   ).click()
    frame = _wait(b).until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Data quality']")))
    _wait(b).until(lambda d: d.current_url.startswith(f"{url}/plugin/c360-quality"))
    sandbox = frame.get_attribute("sandbox")
    b.switch_to.frame(frame)
    _wait(b).until(ec.presence_of_element_located((By.CSS_SELECTOR, "table#datasets tbody tr")))
    return sandbox


def _row(b, name: str):
    from selenium.webdriver.common.by import By

    return b.find_element(By.CSS_SELECTOR, f'tr[data-dataset="{name}"]')


def _shot(b, name: str) -> None:
    b.switch_to.default_content()
    b.save_screenshot(str(ARTIFACTS / name))
    assert (ARTIFACTS / name).stat().st_size > 10_000


def _into_frame(b):
    from selenium.webdriver.common.by import By

    b.switch_to.default_content()
    b.switch_to.frame(b.find_element(By.CSS_SELECTOR, "iframe[title='Data quality']"))


def test_at_a_glance_blocked_published_nothing_ran(browser, seeded):
    from selenium.webdriver.common.by import By

    b = browser
    # Airflow 3.3's sandbox for a nav view: no allow-top-navigation, no allow-popups (target=_top does nothing)
    assert _open_from_menu(b, seeded.url) == "allow-scripts allow-same-origin allow-forms allow-downloads"
    states = {r.get_attribute("data-dataset"): r.find_element(By.CSS_SELECTOR, ".badge").text
              for r in b.find_elements(By.CSS_SELECTOR, "table#datasets tbody tr")}
    assert states[TX] == "blocked: not published"
    assert states[PRODUCT] == "published with warnings"
    assert states[BRAND] == "nothing ran"
    tx = _row(b, TX)
    assert "77.78" in tx.text and "last good: 88.89" in tx.text and "quarantined: 3 rows" in tx.text
    assert f"{BLOCKING} (failed): measured 12" in tx.text and "blocks at any row" in tx.text
    trend = tx.find_element(By.CSS_SELECTOR, "svg.trend")
    label = trend.get_attribute("aria-label")
    assert "3 of 24 intervals scored" in label and "21 without a run" in label and "1 blocked attempt" in label
    assert len(trend.find_elements(By.CSS_SELECTOR, "circle.pt.blocked")) == 1
    assert [t.text for t in trend.find_elements(By.CSS_SELECTOR, "text.axis")][:3] == ["0", "50", "100"]
    brand = _row(b, BRAND)
    assert "paused" in brand.text and "started by dag.test()" in brand.text
    # nothing overflows or is clipped at 1400 px
    widths = b.execute_script(
        "const d = document.documentElement; return [d.scrollWidth, d.clientWidth, "
        "Array.from(document.querySelectorAll('#datasets td, #datasets th')).filter("
        "c => c.scrollWidth > c.clientWidth + 1).length]")
    assert widths[0] <= widths[1] and widths[2] == 0, widths
    _shot(b, "steward_overview.png")


def test_search_filter_and_sort_by_clicking(browser, seeded):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    b = browser
    _open_from_menu(b, seeded.url)

    def visible():
        return [r.get_attribute("data-dataset") for r in b.find_elements(By.CSS_SELECTOR, "table#datasets tbody tr")
                if r.is_displayed()]

    assert visible()[0] == TX  # the worst state first
    b.find_element(By.CSS_SELECTOR, "button.chip[data-filter='blocked']").click()
    assert visible() == [TX]
    b.find_element(By.CSS_SELECTOR, "button.chip[data-filter='all']").click()
    search = b.find_element(By.ID, "search")
    search.send_keys("weekly")
    assert set(visible()) == {PRODUCT, BRAND}
    search.clear()
    Select(b.find_element(By.ID, "state-filter")).select_by_visible_text("published with warnings")
    # product is seeded so; the filter keeps only rows in that state
    assert PRODUCT in visible() and TX not in visible() and BRAND not in visible()
    states = {r.get_attribute("data-state") for r in b.find_elements(By.CSS_SELECTOR, "table#datasets tbody tr")
              if r.is_displayed()}
    assert len(states) == 1, states
    Select(b.find_element(By.ID, "state-filter")).select_by_visible_text("all")
    b.find_element(By.CSS_SELECTOR, "th button[data-sort='score']").click()  # ascending: never scored first
    scores = [float(r.get_attribute("data-score")) for r in b.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert scores == sorted(scores)
    b.find_element(By.CSS_SELECTOR, "th button[data-sort='score']").click()  # descending: best first
    scores = [float(r.get_attribute("data-score")) for r in b.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert scores == sorted(scores, reverse=True) and _row(b, TX).is_displayed()
    b.find_element(By.CSS_SELECTOR, "th button[data-sort='name']").click()
    names = visible()
    assert names == sorted(names) and len(names) == len(steward.catalogue())


def _appearance(b, mode: str, theme: str) -> None:
    """User → Appearance → ``mode`` in Airflow's menu; returns inside the frame once the page shows ``theme``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    b.switch_to.default_content()
    b.find_element(By.CSS_SELECTOR, "button[aria-label=User]").click()
    _wait(b).until(ec.element_to_be_clickable((By.XPATH, "//*[@role='menuitem'][normalize-space()='Appearance']"))
                   ).click()
    _wait(b).until(ec.element_to_be_clickable((By.XPATH, f"//*[@role='menuitemradio'][normalize-space()='{mode}']"))
                   ).click()
    _into_frame(b)
    _wait(b, 10).until(lambda d: d.execute_script("return document.documentElement.dataset.theme") == theme)


def test_the_page_follows_airflows_dark_mode(browser, seeded):
    b = browser
    _open_from_menu(b, seeded.url)
    light = b.execute_script("return getComputedStyle(document.body).backgroundColor")
    _appearance(b, "Dark Mode", "dark")
    dark = b.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert light == "rgb(255, 255, 255)" and dark == "rgb(17, 19, 24)", (light, dark)
    _shot(b, "steward_overview_dark.png")
    _appearance(b, "Light Mode", "light")


def test_links_work_when_clicked_inside_airflows_iframe(browser, seeded, demo_runs):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    b, url = browser, seeded.url
    _open_from_menu(b, url)
    # a page of this app: navigates inside the iframe; Airflow mirrors it into the address bar
    _row(b, TX).find_element(By.CSS_SELECTOR, "a.dataset").click()
    _wait(b).until(ec.text_to_be_present_in_element((By.ID, "state"), "blocked: not published"))
    assert "last good" in b.find_element(By.ID, "explanation").text
    assert "88.89" in b.find_element(By.ID, "last-good").text
    b.switch_to.default_content()
    _wait(b).until(lambda d: d.current_url == f"{url}/plugin/c360-quality/c360-quality/datasets/{TX}")
    _shot(b, "steward_dataset.png")
    _into_frame(b)
    contract = b.find_element(By.CSS_SELECTOR, f'#contract tr[data-check="{BLOCKING}"]')
    assert "blocks at any row" in contract.text and "any amount outside ±100,000" in contract.text
    timeliness = b.find_element(By.CSS_SELECTOR, '#contract tr[data-check="timeliness - transaction processing time"]')
    assert "blocks at ≥ 5 % of rows; warns at any row" in timeliness.text
    assert contract.find_element(By.CSS_SELECTOR, "td:last-child").text == "failed"  # in the latest run
    contract.find_element(By.TAG_NAME, "a").click()  # the check's history
    _wait(b).until(ec.presence_of_element_located((By.ID, "check-history")))
    assert b.find_element(By.ID, "thresholds").text == "blocks at any row"
    assert "24 of 200 rows (invalid_count)" in b.find_element(By.ID, "check-history").text
    b.find_element(By.LINK_TEXT, TX).click()  # the breadcrumb, back to the dataset
    _wait(b).until(ec.presence_of_element_located((By.ID, "runs")))
    # the menu entry, clicked while the frame shows a page other than the overview, opens the overview
    b.switch_to.default_content()
    b.find_element(By.CSS_SELECTOR, "button[aria-label=Browse]").click()
    _wait(b).until(ec.element_to_be_clickable((By.XPATH, "//*[@role='menuitem'][normalize-space()='Data quality']"))
                   ).click()
    _wait(b).until(lambda d: d.current_url == f"{url}/plugin/c360-quality/c360-quality/")
    _into_frame(b)
    _wait(b).until(ec.presence_of_element_located((By.CSS_SELECTOR, "table#datasets")))
    # a page of Airflow: the run link opens the DAG run in Airflow's UI, not inside the frame
    run_id = demo_runs[TX].run_id
    link = _row(b, TX).find_element(By.CSS_SELECTOR, "a.run-link")
    assert link.text == run_id
    link.click()
    b.switch_to.default_content()
    expected = f"{url}/dags/{TX_DAG}/runs/{urllib.parse.quote(run_id, safe='')}"
    _wait(b).until(lambda d: d.current_url == expected)
    _wait(b).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "iframe"))
    _wait(b).until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), run_id))
    _shot(b, "steward_run_link_in_airflow.png")
    b.back()  # and back to the quality page
    _wait(b).until(lambda d: d.current_url.startswith(f"{url}/plugin/c360-quality"))
    _wait(b).until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Data quality']")))


def test_a_rerun_that_passes_keeps_the_blocked_attempt(seeded, demo_runs):
    interval = _interval(demo_runs[TX])
    assert quality.save_results(TX, interval, _checks(TX)) == 100.0  # the rerun (attempt 2) passes …
    _publish(TX, "c360.transactions", interval, 118)  # … and publishes
    tx = _datasets(seeded)[TX]
    assert tx["state"] == "published" and tx["latest"]["attempt"] == 2
    status, body = _get(seeded.url + f"/c360-quality/api/datasets/{TX}/scores", seeded.token)
    run = [(a["attempt"], a["score"], a["outcome"]) for a in json.loads(body) if a["dag_run_id"] == interval.run_id]
    assert run == [(1, 77.78, "blocked"), (2, 100.0, "published")]


def test_history_shows_the_blocked_attempt_after_the_rerun(browser, seeded, demo_runs):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    b = browser
    _open_from_menu(b, seeded.url)
    tx = _row(b, TX)
    assert tx.find_element(By.CSS_SELECTOR, ".badge").text == "published"
    trend = tx.find_element(By.CSS_SELECTOR, "svg.trend")
    assert "1 blocked attempt" in trend.get_attribute("aria-label")
    marks = trend.find_elements(By.CSS_SELECTOR, "circle.pt")
    assert len(marks) == 4 and len(trend.find_elements(By.CSS_SELECTOR, "circle.pt.blocked")) == 1
    tx.find_element(By.CSS_SELECTOR, "a.run-details").click()  # the run's page, inside the frame
    _wait(b).until(ec.presence_of_element_located((By.ID, "attempt-1")))
    assert b.find_element(By.ID, "attempt-2").text.startswith("Attempt 2")
    assert "published" in b.find_element(By.ID, "attempt-2").text
    assert "blocked" in b.find_element(By.ID, "attempt-1").text
    assert "3:" in b.find_element(By.ID, "quarantine").text.replace(",", "")
    assert "2 × amount is not a number" in b.find_element(By.ID, "quarantine").text
    assert "none: Soda Core reports how many rows failed" in b.find_element(By.ID, "samples").text
    _shot(b, "steward_run_after_rerun.png")
    _into_frame(b)
    b.find_element(By.LINK_TEXT, TX).click()  # breadcrumb to the dataset page: both attempts of the run
    _wait(b).until(ec.presence_of_element_located((By.ID, "runs")))
    rows = b.find_elements(By.CSS_SELECTOR, f'#runs tr[data-run="{demo_runs[TX].run_id}"]')
    assert [(r.get_attribute("data-attempt"), r.get_attribute("data-outcome")) for r in rows] == [
        ("2", "published"), ("1", "blocked")]
    time.sleep(0.2)
    _shot(b, "steward_dataset_after_rerun.png")
