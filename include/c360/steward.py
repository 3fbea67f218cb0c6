"""The data steward's quality page: a FastAPI app mounted in the Airflow API server by
``plugins/c360_steward.py`` (menu entry "Data quality" in the Airflow UI).

Routes (every one requires an authenticated Airflow user: a bearer token or the UI session cookie; 401
otherwise):

* ``GET /c360-quality/``                              the page (server-rendered HTML, inline SVG trends)
* ``GET /c360-quality/api/datasets``                  per dataset: latest score against its cadence, whether
                                                      the latest expected run is missing, failing checks
* ``GET /c360-quality/api/datasets/{name}/scores``    the score over time
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from c360 import pg, settings

URL_PREFIX = "/c360-quality"


@dataclass
class Entry:
    """One quality-scored dataset (a source dataset or a derived output) and the DAG that scores it."""

    name: str
    kind: str  # dataset | output
    dag_id: str
    schedule: str
    owner: str


def catalogue() -> list[Entry]:
    from c360.registry import load_registry

    registry = load_registry()
    entries = [Entry(ds.name, "dataset", ds.dag_id, ds.cadence.schedule, ds.owner) for ds in registry.active()]
    for d in registry.derived.values():
        entries += [Entry(o.name, "output", d.dag_id, d.cadence.schedule, d.owner) for o in d.outputs]
    return entries


def expected_interval_end(schedule: str, now: datetime) -> datetime:
    """End of the latest interval that should have run by ``now`` (the last cron tick at or before it)."""
    from croniter import croniter

    naive = now.astimezone(UTC).replace(tzinfo=None)
    if croniter.match(schedule, naive):
        return naive.replace(tzinfo=UTC)
    return croniter(schedule, naive).get_prev(datetime).replace(tzinfo=UTC)


@dataclass
class Status:
    name: str
    kind: str
    dag_id: str
    owner: str
    cadence: str
    schedule: str
    expected_interval_end: str
    latest: dict[str, Any] | None
    missing_latest_run: bool
    failing_checks: list[dict[str, Any]] = field(default_factory=list)
    run_url: str | None = None


def _sql(name: str) -> str:
    return (settings.SQL_DIR / "steward" / name).read_text()


def statuses(now: datetime | None = None) -> list[Status]:
    from c360.registry import cadence_label

    now = now or datetime.now(UTC)
    out = []
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        has_tables = conn.execute("select to_regclass('quality.dataset_scores') is not null").fetchone()[0]
        latest = {r[0]: r for r in conn.execute(_sql("latest_scores.sql")).fetchall()} if has_tables else {}
        for e in catalogue():
            row = latest.get(e.name)
            expected = expected_interval_end(e.schedule, now)
            info, failing, url = None, [], None
            if row:
                _, score, start, end, run_id, dag_id, passed, warned, failed, not_eval, scored_at = row
                info = {"score": float(score) if score is not None else None, "interval_start": start.isoformat(),
                        "interval_end": end.isoformat(), "dag_run_id": run_id, "dag_id": dag_id or e.dag_id,
                        "checks_passed": passed, "checks_warned": warned, "checks_failed": failed,
                        "checks_not_evaluated": not_eval, "scored_at": scored_at.isoformat()}
                failing = [
                    {"check": c, "column": col, "outcome": o, "measured": v, "expected": th, "severity": sev}
                    for c, col, o, v, th, sev in conn.execute(_sql("failing_checks.sql"), (e.name, run_id))
                ]
                url = f"dags/{info['dag_id']}/runs/{run_id}"
            out.append(Status(
                name=e.name, kind=e.kind, dag_id=e.dag_id, owner=e.owner, cadence=cadence_label(e.schedule),
                schedule=e.schedule, expected_interval_end=expected.isoformat(), latest=info,
                missing_latest_run=row is None or row[3] < expected, failing_checks=failing, run_url=url))
    return out


def score_history(name: str, limit: int = 500) -> list[dict[str, Any]]:
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        if not conn.execute("select to_regclass('quality.dataset_scores') is not null").fetchone()[0]:
            return []
        rows = conn.execute(_sql("score_history.sql"), (name, limit)).fetchall()
    return [{"interval_end": end.isoformat(), "score": float(s) if s is not None else None, "dag_run_id": run}
            for end, s, run in rows]


# ---- HTML ------------------------------------------------------------------------------------------------


def _sparkline(points: list[dict[str, Any]], width: int = 180, height: int = 36) -> str:
    values = [p["score"] for p in points if p["score"] is not None]
    if not values:
        return '<span class="muted">no scores yet</span>'
    n = len(values)
    xs = [width / 2] if n == 1 else [i * (width - 4) / (n - 1) + 2 for i in range(n)]
    coords = " ".join(f"{x:.1f},{height - 2 - v / 100 * (height - 4):.1f}" for x, v in zip(xs, values, strict=True))
    label = f"score trend: {n} runs, from {values[0]:g} to {values[-1]:g}"
    return (f'<svg class="trend" width="{width}" height="{height}" role="img" aria-label="{label}">'
            f'<title>{label}</title><polyline fill="none" stroke="#017cee" stroke-width="2" points="{coords}"/>'
            + "".join(f'<circle cx="{x:.1f}" cy="{height - 2 - v / 100 * (height - 4):.1f}" r="2" fill="#017cee"/>'
                      for x, v in zip(xs, values, strict=True)) + "</svg>")


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render_page(now: datetime | None = None) -> str:
    e = html.escape
    rows = []
    for s in statuses(now):
        latest = s.latest
        score = "—" if not latest or latest["score"] is None else f"{latest['score']:.2f}"
        status = ('<span class="bad">latest expected run missing</span>' if s.missing_latest_run
                  else '<span class="good">on schedule</span>')
        interval = (f"{latest['interval_start'][:16]} → {latest['interval_end'][:16]}" if latest else "never scored")
        checks = "".join(
            f"<li class=\"{e(c['outcome'])}\"><b>{e(c['check'])}</b> ({e(c['outcome'])}, {e(c['severity'])}): "
            f"measured {e(_num(c['measured']))}, expected {e(str(c['expected']))}</li>"
            for c in s.failing_checks) or "<li class=\"muted\">none</li>"
        run = (f'<a href="../{e(s.run_url)}" target="_top">{e(latest["dag_run_id"])}</a>' if s.run_url else "—")
        rows.append(
            f'<tr data-dataset="{e(s.name)}"><td><b>{e(s.name)}</b><br><span class="muted">{e(s.kind)}, '
            f'{e(s.owner)}</span></td><td>{e(s.dag_id)}<br><span class="muted">{e(s.cadence)} '
            f'<code>{e(s.schedule)}</code></span></td><td class="score">{score}</td><td>{e(interval)}<br>{status}'
            f'<br><span class="muted">expected up to {e(s.expected_interval_end[:16])}</span></td>'
            f'<td>{_sparkline(score_history(s.name))}</td><td><ul>{checks}</ul></td><td>{run}</td></tr>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>c360 data quality</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #1d2129; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #dde; padding: .5rem; vertical-align: top; text-align: left; }}
td.score {{ font-size: 1.4rem; font-weight: 600; }}
.muted {{ color: #6b7280; font-size: .85rem; }} .bad {{ color: #b42318; }} .good {{ color: #067647; }}
li.failed {{ color: #b42318; }} li.warned {{ color: #b54708; }} ul {{ margin: 0; padding-left: 1.1rem; }}
</style></head><body>
<h1>Data quality</h1>
<p class="muted">Score = 100 × passed / evaluated checks of the latest run (quality/README.md). A run is
missing when no score exists for the latest interval the cadence expects. JSON:
<a href="api/datasets">api/datasets</a>.</p>
<table><thead><tr><th>dataset</th><th>DAG, cadence</th><th>latest score</th><th>interval</th><th>trend</th>
<th>failing checks (measured vs expected)</th><th>run</th></tr></thead><tbody>
{''.join(rows)}
</tbody></table></body></html>"""


def create_app():
    import asyncio

    from airflow.api_fastapi.core_api.security import requires_authenticated
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import HTMLResponse

    app = FastAPI(title="c360 data quality", dependencies=[Depends(requires_authenticated())])
    known = {e.name for e in catalogue()}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return await asyncio.to_thread(render_page)

    @app.get("/api/datasets")
    async def datasets() -> list[dict[str, Any]]:
        return [asdict(s) for s in await asyncio.to_thread(statuses)]

    @app.get("/api/datasets/{name}/scores")
    async def scores(name: str) -> list[dict[str, Any]]:
        if name not in known:
            raise HTTPException(status_code=404, detail=f"no dataset {name!r}; known: {sorted(known)}")
        return await asyncio.to_thread(score_history, name)

    return app
