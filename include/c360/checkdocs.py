"""What a contract's checks mean, for people: thresholds in words and the explanations in quality/README.md.

* :func:`contract_checks` reads a Soda v4 contract (``quality/<name>.yml``) and gives each check its type,
  column and its thresholds in words with their unit (:func:`threshold_words`), e.g. "blocks at ≥ 5 % of
  rows; warns at any row".
* :func:`readme_meanings` parses the tables of ``quality/README.md`` (one section per contract file), so the
  steward page shows what each check protects and why its threshold is what it is, from the one document
  that explains them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# row-level checks: their metric counts rows (or a percentage of the batch's rows)
ROW_CHECKS = {"missing", "invalid", "duplicate", "failed_rows"}
FRESHNESS_UNITS = {"second": "seconds", "minute": "minutes", "hour": "hours", "day": "days"}

# the condition each bound breaches: a check "must be < 5" fails at "≥ 5"
_BREACH = {
    "must_be_less_than": "≥",
    "must_be_less_than_or_equal": ">",
    "must_be_greater_than": "≤",
    "must_be_greater_than_or_equal": "<",
    "must_be": "≠",
    "must_not_be": "=",
}


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def _breach(check_type: str, spec: dict[str, Any], bound: dict[str, Any]) -> str:
    """When one threshold (level) is breached, in words: "≥ 5 % of rows", "any row", "≥ 12 hours old"."""
    metric = bound.get("metric") or spec.get("threshold", {}).get("metric") or "count"
    conditions = [(k, bound[k]) for k in _BREACH if bound.get(k) is not None]
    if isinstance(bound.get("must_be_between"), dict):
        between = bound["must_be_between"]
        lo = between.get("greater_than", between.get("greater_than_or_equal"))
        hi = between.get("less_than", between.get("less_than_or_equal"))
        conditions.append(("outside", f"{_num(lo)}–{_num(hi)}"))
    if not conditions:
        conditions = [("must_be", 0)]  # Soda's default for row checks: no failing row
    if check_type in ROW_CHECKS:
        rows = "rows of its query" if check_type == "failed_rows" and spec.get("query") else "rows"
        words = []
        for key, value in conditions:
            if key == "must_be" and value == 0:
                words.append("any " + rows.replace("rows", "row", 1))
            else:
                amount = f"outside {value}" if key == "outside" else f"{_BREACH[key]} {_num(value)}"
                words.append(f"{amount} % of {rows}" if metric == "percent" else f"{amount} {rows}")
        return "at " + " or ".join(words)
    if check_type == "freshness":
        unit = bound.get("unit") or spec.get("threshold", {}).get("unit") or "hour"
        return "when the newest row is " + " or ".join(
            f"{_BREACH.get(k, k)} {_age(v, unit)} old" for k, v in conditions)
    if check_type == "row_count":
        return "when the batch has " + " or ".join(
            "no rows" if (k, v) == ("must_be_greater_than", 0) else f"{_BREACH.get(k, k)} {_num(v)} rows"
            for k, v in conditions)
    return "when the value is " + " or ".join(
        f"{_BREACH[k]} {_num(v)}" if k != "outside" else f"outside {v}" for k, v in conditions)


def _age(value: Any, unit: str) -> str:
    words = f"{_num(value)} {FRESHNESS_UNITS.get(unit, unit + 's')}"
    if unit == "hour" and isinstance(value, int | float) and value >= 48 and value % 24 == 0:
        words += f" ({_num(value // 24)} days)"
    return words


def threshold_words(check_type: str, spec: dict[str, Any] | None) -> str:
    """A contract check's thresholds in words: what blocks the publish and what only warns.

    >>> threshold_words("missing", {"threshold": {"metric": "percent", "must_be_less_than": 5,
    ...                                           "additional": {"level": "warn", "must_be": 0}}})
    'blocks at ≥ 5 % of rows; warns at any row'
    """
    spec = spec or {}
    if check_type == "schema":
        return "blocks on a missing, extra or retyped column"
    threshold = dict(spec.get("threshold") or {})
    additional = threshold.pop("additional", None)
    levels: list[tuple[str, dict[str, Any]]] = [(threshold.get("level", "fail"), threshold)]
    if additional:
        levels.append((additional.get("level", "warn"), {**{"metric": threshold.get("metric"),
                                                           "unit": threshold.get("unit")}, **additional}))
    if check_type == "row_count" and not spec.get("threshold"):
        levels = [("fail", {"must_be_greater_than": 0})]
    parts = {"fail": [], "warn": []}
    for level, bound in levels:
        parts["fail" if level == "fail" else "warn"].append(_breach(check_type, spec, bound))
    words = []
    if parts["fail"]:
        words.append("blocks " + " or ".join(parts["fail"]))
    if parts["warn"]:
        words.append("warns " + " or ".join(parts["warn"]))
    if not parts["fail"]:
        words.append("never blocks")
    return "; ".join(words)


@dataclass
class ContractCheck:
    name: str
    type: str
    column: str | None
    thresholds: str  # in words
    spec: dict[str, Any] = field(default_factory=dict, repr=False)
    meaning: dict[str, str] = field(default_factory=dict)  # README columns: protects, warns when, why, …


def contract_checks(contract_path: Path, meanings: dict[str, dict[str, dict[str, str]]] | None = None
                    ) -> list[ContractCheck]:
    """Every check of a contract, in contract order, with its thresholds in words (and, given
    :func:`readme_meanings`, what the README says about it)."""
    import yaml

    contract = yaml.safe_load(contract_path.read_text())
    entries = [(None, e) for e in contract.get("checks") or []]
    entries += [(c["name"], e) for c in contract.get("columns") or [] for e in c.get("checks") or []]
    docs = meaning_lookup(meanings or {}, contract_path.name)
    out = []
    for column, entry in entries:
        ((check_type, spec),) = entry.items()
        spec = spec or {}
        name = spec.get("name") or (f"{column} {check_type}" if column else check_type)
        out.append(ContractCheck(name, check_type, column, threshold_words(check_type, spec), spec, docs(name)))
    return out


# ---- quality/README.md -------------------------------------------------------------------------------------

_SECTION = re.compile(r"^## (.+)$", re.M)
EVERY = "*"  # the key of "Checks in every dataset contract"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _plain(text: str) -> str:
    return text.replace("`", "").replace("**", "").strip()


def readme_meanings(readme: Path) -> dict[str, dict[str, dict[str, str]]]:
    """``{contract file: {row key: {column: text}}}`` from the README's tables, one section per contract.

    A section names its contract files in backticks in its heading (``## customer (`customer.yml`) — …``);
    its table's first column is the check's name (or, in the Customer 360 outputs' table, the output, and the
    second the check). Row keys are the check cells as written (several checks may share a row:
    ``order id present; line item appears once``); :func:`meaning_lookup` matches a check name to them.
    """
    text = readme.read_text()
    headings = list(_SECTION.finditer(text))
    out: dict[str, dict[str, dict[str, str]]] = {}
    for i, h in enumerate(headings):
        body = text[h.end(): headings[i + 1].start() if i + 1 < len(headings) else len(text)]
        files = re.findall(r"`([\w-]+\.yml)`", h.group(1))
        if h.group(1).lower().startswith("checks in every"):
            files = [EVERY]
        if not files:
            continue
        lines = [ln for ln in body.splitlines() if ln.startswith("|")]
        if len(lines) < 3:
            continue
        header = [_plain(c) for c in _cells(lines[0])]
        for line in lines[2:]:
            row = dict(zip(header, (_plain(c) for c in _cells(line)), strict=False))
            if "output" in header:  # the outputs' table: a row is for one output's file, or "all"
                targets = files if row["output"] == "all" else [f for f in files if f == f"{row['output']}.yml"]
            else:
                targets = files
            key = row.get("check", "")
            meaning = {k: v for k, v in row.items() if k not in ("check", "output") and v and v != "—"}
            for f in targets:
                out.setdefault(f, {})[key] = meaning
    return out


def _norm(name: str) -> str:
    name = name.lower().replace("–", "-").replace("×", "times")
    return re.sub(r"\s+", " ", name).strip()


def _variants(cell: str) -> set[str]:
    """The check names a README row covers, normalised (:func:`_norm`): ``a; b`` is two;
    ``activity id present / unique`` is ``activity id present`` and ``activity id unique``; ``r/f/m score 1–5``
    is ``r score 1-5``, ``f score 1-5`` and ``m score 1-5``."""
    names = set()
    for part in (_norm(p) for p in cell.split(";")):
        names.add(part)
        if " / " in part:
            left, right = part.rsplit(" / ", 1)
            names.add(left)
            names.add(left.rsplit(" ", 1)[0] + " " + right if " " in left else right)
        letters = re.match(r"^(\w(?:/\w)+) (.+)$", part)
        if letters:
            names.update(f"{x} {letters.group(2)}" for x in letters.group(1).split("/"))
    return {n for n in names if n}


def _bare(name: str) -> str:
    """Without a trailing parenthetical: ``segment type known (list segment_type)`` → ``segment type known``."""
    return re.sub(r"\s*\([^)]*\)$", "", name)


def meaning_lookup(meanings: dict[str, dict[str, dict[str, str]]], contract_file: str):
    """A function from a check name to what the README says about it: the contract's own section first, then
    the section of the checks every dataset contract has (schema, freshness)."""
    own = meanings.get(contract_file, {})
    anywhere = [meanings.get(EVERY, {})]

    def find(name: str) -> dict[str, str]:
        wanted = _norm(name)
        for match in (lambda key: wanted in _variants(key),
                      lambda key: _bare(wanted) in {_bare(v) for v in _variants(key)}):
            for rows in (own, *anywhere):
                for key, meaning in rows.items():
                    if match(key):
                        return meaning
        return {}

    return find
