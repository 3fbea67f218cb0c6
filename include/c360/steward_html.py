"""The steward page's pages: what :mod:`c360.steward` finds, as HTML (Jinja2 templates in ``templates/steward``)
with trend charts, inline SVG (``trend.svg``; its geometry computed here: axis, values, one mark per attempt, gaps
where no run was scored)."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from markupsafe import Markup

from c360 import settings, steward

TEMPLATES = Path(__file__).with_name("templates") / "steward"

# the colour class of each attempt's mark
MARKS = {"published": "published", "blocked": "blocked", "not_published": "not-published"}


@cache
def _env():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "svg"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(when=steward.when, score=steward._score, STATES=steward.STATES, quote=_quote,
                       failing_rows=steward.failing_rows, number=number, date_only=date_only)
    return env


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def render(template: str, **context: Any) -> str:
    # the menu entry's path: a page that finds the UI there while it is not the overview goes to the overview
    context.setdefault("menu_path", f"{context['airflow_base']}/plugin/{steward.URL_ROUTE}")
    return _env().get_template(template).render(**context)


def number(value: Any, unit: str | None = None) -> str:
    """A measured value for people: ``12.5 %``, ``3``, ``—``."""
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:,.0f}" if value.is_integer() else f"{value:,.4g}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    if unit:
        text += (" %" if unit in ("%", "percent") else f" {unit}")
    return text


def date_only(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d")


def _tick(end: datetime, subdaily: bool) -> str:
    return end.astimezone(UTC).strftime("%m-%d %H:%M" if subdaily else "%Y-%m-%d")


def trend_svg(slots: list, *, width: int = 220, height: int = 74, value_key: str = "score",
              ymax: float | None = 100.0, unit: str = "", what: str = "score", labels: int = 2) -> Markup:
    """A trend of ``slots`` (:class:`c360.steward.Slot`): x = intervals, oldest left; y = the value.

    Every attempt is a mark coloured by its outcome (published, blocked, not published) with a tooltip; the
    line joins each interval's latest attempt and breaks at a gap (an interval without a run, marked "no
    run" on the axis). The y axis is labelled at 0, half and top; the x axis at the first and last interval
    (``labels`` of them in all); the latest value is written beside its mark.
    """
    e = html.escape
    values = [a[value_key] for s in slots for a in s.attempts if a.get(value_key) is not None]
    runs = sum(1 for s in slots if s.attempts)
    if not runs:
        return Markup(f'<span class="muted">no {e(what)} yet</span>')
    top = ymax if ymax is not None else nice_top(max(values, default=0))
    left, right, up, down = 34, 46, 8, 18
    plot_w, plot_h = width - left - right, height - up - down
    n = len(slots)
    subdaily = any((b.end - a.end).total_seconds() < 86_400 for a, b in zip(slots, slots[1:], strict=False))

    def x(i: int) -> float:
        return left + (i + 0.5) * plot_w / n

    def y(v: float) -> float:
        return up + (1 - min(max(v, 0), top) / top) * plot_h

    grid = [{"y": up + (1 - frac) * plot_h, "label": _short(top * frac)} for frac in (0, 0.5, 1)]
    picks = sorted({0, n - 1} | ({round(k * (n - 1) / (labels - 1)) for k in range(labels)} if labels > 2 else set()))
    ticks = []
    for i in picks:  # x axis: interval ends
        anchor = "start" if i == 0 and n > 1 else "end" if i == n - 1 and n > 1 else "middle"
        ticks.append({"x": left if anchor == "start" else width - right if anchor == "end" else x(i),
                      "anchor": anchor, "text": _tick(slots[i].end, subdaily)})
    marks: list[dict[str, Any]] = []
    segments: list[list[str]] = [[]]
    gaps = blocked = 0
    last_point = None
    for i, s in enumerate(slots):
        if not s.attempts:
            gaps += s.skipped or 1
            segments.append([])
            note = (f"no run for {s.skipped} intervals up to {_tick(s.end, True)} UTC" if s.skipped
                    else f"no run for the interval ending {_tick(s.end, True)} UTC")
            band = plot_w / n
            marks.append({"kind": "gap", "x": x(i) - band / 2, "w": band, "title": note})
            continue
        m = len(s.attempts)
        for k, a in enumerate(s.attempts):
            v = a.get(value_key)
            outcome = a.get("outcome", "published")
            blocked += outcome == "blocked"
            label = (f"{_tick(s.end, True)} UTC · {a.get('dag_run_id', '')} · attempt {a.get('attempt', 1)} · "
                     f"{what} {_short(v) if v is not None else 'none'}{unit} · {outcome.replace('_', ' ')}")
            ax = x(i) + (k - (m - 1) / 2) * 5
            if v is None:
                marks.append({"kind": "unscored", "x": ax, "title": label})
            else:
                marks.append({"kind": "point", "x": ax, "y": y(v), "title": label,
                              "mark": MARKS.get(a.get("mark") or outcome, "published")})
        final = s.attempts[-1].get(value_key)
        if final is not None:
            segments[-1].append(f"{x(i):.1f},{y(final):.1f}")
            last_point = (x(i), y(final), final)
        else:
            segments.append([])
    intervals = sum(s.skipped or 1 for s in slots)
    summary = (f"{what} trend: {runs} of {intervals} intervals scored, {gaps} without a run, {blocked} blocked "
               f"attempt{'s' if blocked != 1 else ''}; latest {_short(last_point[2]) if last_point else 'none'}{unit}")
    value = ({"x": last_point[0] + 6, "y": last_point[1] + 4, "text": f"{_short(last_point[2])}{unit}"}
             if last_point else None)
    return Markup(_env().get_template("trend.svg").render(
        width=width, height=height, left=left, right=right, top_y=up, plot_h=plot_h, baseline=up + plot_h,
        grid=grid, ticks=ticks, marks=marks, polylines=[" ".join(seg) for seg in segments if len(seg) > 1],
        value=value, summary=summary).strip())


def nice_top(value: float) -> float:
    """The axis top for values up to ``value``: the next of 1, 2, 2.5, 5 × 10^k above it (at least 1)."""
    import math

    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value)


def _short(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}" if abs(v) < 1000 else f"{v:,.0f}"


def overview_page(root: str, airflow_base: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    entries = steward.catalogue()
    found = sorted(steward.statuses(now, entries=entries), key=lambda s: (steward.RANK[s.state], s.name))
    by_name = {e.name: e for e in entries}
    trends = {}
    for s in found:
        e = by_name[s.name]
        slots = steward.trend_slots(e.schedule, steward.expected_interval_end(e.schedule, now), steward.attempts(s.name, limit=200),
                            steward.OVERVIEW_SLOTS)
        trends[s.name] = trend_svg(slots)
    counts = [(state, n) for state in steward.RANK if (n := sum(s.state == state for s in found))]
    return render(
        "overview.html", root=root, airflow_base=airflow_base, now=now, statuses=found, trends=trends,
        counts=sorted(counts, key=lambda c: steward.RANK[c[0]]), rank=steward.RANK, attention_states=steward.ATTENTION,
        attention=sum(s.state in steward.ATTENTION for s in found))


def dataset_page(e: steward.Entry, root: str, airflow_base: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    (s,) = steward.statuses(now, entries=[e])
    history = steward.attempts(e.name, limit=1000)
    slots = steward.trend_slots(e.schedule, steward.expected_interval_end(e.schedule, now), history, steward.DATASET_SLOTS)
    docs = steward.contract_docs(e.contract_path)
    latest_outcomes, platform, platform_thresholds = {}, [], {}
    if s.latest:
        runs = steward.run_checks(e.name, s.latest["dag_run_id"])
        for c in runs.get(max(runs), []) if runs else []:
            latest_outcomes[c["check_name"]] = c["outcome"]
            if c["check_name"] not in docs:
                platform.append((c["check_name"], c["outcome"]))
                platform_thresholds[c["check_name"]] = c["threshold"] or ""
    return render(
        "dataset.html", root=root, airflow_base=airflow_base, s=s, attempts=history[:200], **personal_data(e),
        trend=trend_svg(slots, width=900, height=200, labels=6), window=len(slots),
        checks=list(docs.values()), latest_outcomes=latest_outcomes, platform_checks=platform,
        platform_thresholds=platform_thresholds, contract=e.contract_path.relative_to(settings.PROJECT_DIR),
        run_route=steward.airflow_run_route)


def personal_data(e: steward.Entry) -> dict[str, Any]:
    """What the dataset page says about PII: its PII columns and how each role sees each (the rule the masking
    views are made from, c360.governance.rule), where each role reads the table, and the row policies."""
    from c360 import governance
    from c360.registry import load_registry

    registry = load_registry()
    g = registry.governance
    entry = next((x for x in registry.published() if x.table == e.table), None)
    if g is None or entry is None:
        return {"roles": [], "pii_rows": [], "reads": {}, "row_policies": [], "rule_words": governance.RULES}
    return {"roles": list(g.roles), "pii_rows": governance.pii_rows(g, entry), "rule_words": governance.RULES,
            "reads": {r: governance.relation_of(g, r, e.table) for r in g.roles},
            "row_policies": [(p.role, p.column, ", ".join(p.values), p.description) for p in g.row_policies]}


def run_page(e: steward.Entry, run_id: str, root: str, airflow_base: str) -> str:
    from c360 import lake

    runs = sorted(steward.attempts(e.name, run_id=run_id), key=lambda a: -a["attempt"])
    reasons = batch = key = None
    if runs:
        latest = runs[0]
        key = lake.interval_key(latest["interval_start"])
        if e.kind == "dataset":
            reasons = steward.quarantine_reasons(e.name, latest["interval_start"])
        if latest["outcome"] == "blocked":
            batch = steward.batch_table(e, latest["dag_id"] or e.dag_id, latest["interval_start"], latest["interval_end"])
    (s,) = steward.statuses(entries=[e], airflow=None)
    return render(
        "run.html", root=root, airflow_base=airflow_base, s=s, run_id=run_id, attempts=runs,
        checks=steward.run_checks(e.name, run_id), docs=steward.contract_docs(e.contract_path), reasons=reasons, batch=batch,
        interval_key=key, run_route=steward.airflow_run_route)


def check_page(e: steward.Entry, check: str, root: str, airflow_base: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    history = steward.check_history(e.name, check)
    rows = [{**h, "value": h["measured_value"], "outcome": h["outcome"], "mark": steward.CHECK_MARKS.get(h["outcome"]),
             "scored_at": h["checked_at"]} for h in history]
    slots = steward.trend_slots(e.schedule, steward.expected_interval_end(e.schedule, now), rows, steward.DATASET_SLOTS)
    unit = next((h["unit"] for h in history if h["unit"]), None)
    (s,) = steward.statuses(now, entries=[e], airflow=None)
    return render(
        "check.html", root=root, airflow_base=airflow_base, s=s, check=check,
        doc=steward.contract_docs(e.contract_path).get(check), history=history,
        trend=trend_svg(slots, width=900, height=180, value_key="value", ymax=None,
                                     unit=f" {unit}" if unit else "", what="measured", labels=6))
