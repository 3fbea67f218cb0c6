"""Accepted value lists of the quality contracts, from one file a deployment can change.

The lists live in ``quality/accepted_values.yml`` (why there and not in the registry: that file's header).
A contract names a list as the whole value of a key, ``valid_values: ${var.ACCEPTED_<name>}``, and
:func:`fill` puts the list in its place before Soda runs (:func:`c360.quality.contract_for`), so no list is
typed in a contract. ``C360_ACCEPTED_VALUES`` names a deployment's own file, read when a gate runs: each
list in it replaces the default list of the same name, whole; the others keep their defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from c360 import settings

DEFAULT_FILE = settings.QUALITY_DIR / "accepted_values.yml"
ENV_VAR = "C360_ACCEPTED_VALUES"
# a reference to a list in a contract (Soda's variable syntax; filled in here, Soda never sees it)
REFERENCE = re.compile(r"\$\{ *var\.ACCEPTED_([A-Za-z0-9_]*) *\}")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class AcceptedValuesError(ValueError):
    pass


def _read(path: Path) -> dict[str, list[str | int | float]]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise AcceptedValuesError(f"accepted value lists {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise AcceptedValuesError(f"accepted value lists {path}: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise AcceptedValuesError(f"accepted value lists {path}: expected a mapping of list name to values")
    for name, values in data.items():
        if not isinstance(name, str) or not NAME.match(name):
            raise AcceptedValuesError(f"{path}: {name!r}: a list name is lower case letters, digits and _")
        if not isinstance(values, list) or not values:
            raise AcceptedValuesError(f"{path}: {name}: expected a non-empty list of values")
        for i, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise AcceptedValuesError(
                    f"{path}: {name}.{i}: {value!r} is no text or number (YAML reads yes/no/on/off as booleans: "
                    "quote the value)")
        dupes = sorted({str(v) for v in values if values.count(v) > 1})
        if dupes:
            raise AcceptedValuesError(f"{path}: {name}: values listed twice: {dupes}")
    return data


def override_file() -> Path | None:
    """The deployment's file (``C360_ACCEPTED_VALUES``), if one is set."""
    import os

    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser() if value else None


def load() -> dict[str, list[str | int | float]]:
    """The lists in effect: the defaults, each replaced by the deployment's list of the same name."""
    lists = _read(DEFAULT_FILE)
    path = override_file()
    if path is not None:
        override = _read(path)
        unknown = sorted(set(override) - set(lists))
        if unknown:
            raise AcceptedValuesError(
                f"{path} ({ENV_VAR}): {unknown} are not accepted value lists; known: {sorted(lists)}")
        lists.update(override)
    return lists


def references(obj: Any) -> set[str]:
    """The names of the lists a parsed contract references."""
    if isinstance(obj, dict):
        return set().union(*(references(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(references(v) for v in obj))
    return {m.group(1) for m in REFERENCE.finditer(obj)} if isinstance(obj, str) else set()


def fill(obj: Any, source: Path | str, lists: dict[str, list] | None = None, where: str = "") -> Any:
    """A copy of the parsed contract ``obj`` with every list reference replaced by its list."""
    lists = load() if lists is None else lists
    if isinstance(obj, dict):
        return {k: fill(v, source, lists, f"{where}.{k}" if where else str(k)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [fill(v, source, lists, f"{where}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, str) and REFERENCE.search(obj):
        match = REFERENCE.fullmatch(obj.strip())
        if not match:
            raise AcceptedValuesError(f"{source}: {where}: a list reference must be the whole value, got {obj!r}")
        if match.group(1) not in lists:
            raise AcceptedValuesError(
                f"{source}: {where}: no accepted value list {match.group(1)!r} in {DEFAULT_FILE}; "
                f"known: {sorted(lists)}")
        return list(lists[match.group(1)])
    return obj
