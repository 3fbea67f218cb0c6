"""Validation of OpenLineage events against ../shared/openlineage-spec: the run event against
OpenLineage.json, each facet against the schema its ``_schemaURL`` names (the spec's, or for the project's
custom facets its own in include/c360/lineage_facets)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from c360 import settings

SPEC = Path(settings.PROJECT_DIR).parent / "shared" / "openlineage-spec"


@cache
def _schemas():
    from referencing import Registry, Resource

    from c360 import lineage

    schema = json.loads((SPEC / "OpenLineage.json").read_text())
    resources = [(schema["$id"], Resource.from_contents(schema))]
    facets = {}
    custom = sorted(lineage.FACET_SCHEMAS.glob("*.json"))
    for f in [*(SPEC / "facets").glob("*.json"), *custom]:
        facet_schema = json.loads(f.read_text())
        facets[f.name] = facet_schema
        resources.append((facet_schema["$id"], Resource.from_contents(facet_schema)))
    return schema, facets, Registry().with_resources(resources)


def facets_of(event: dict):
    for holder in (event.get("run", {}), event.get("job", {})):
        yield from (f for f in holder.get("facets", {}).values() if isinstance(f, dict) and "_schemaURL" in f)
    for ds in event.get("inputs", []) + event.get("outputs", []):
        for key in ("facets", "inputFacets", "outputFacets"):
            yield from (f for f in ds.get(key, {}).values() if isinstance(f, dict) and "_schemaURL" in f)


def validate(event: dict) -> int:
    """Raise on the first violation; return how many facets were checked against a spec facet schema."""
    import jsonschema

    schema, facets, registry = _schemas()
    jsonschema.Draft202012Validator(schema, registry=registry).validate(event)
    checked = 0
    for facet in facets_of(event):
        name = facet["_schemaURL"].split("#")[0].split("/")[-1]
        if name in facets:
            defs = facet["_schemaURL"].split("#/$defs/")[-1]
            sub = {"$ref": f"{facets[name]['$id']}#/$defs/{defs}"}
            jsonschema.Draft202012Validator(sub, registry=registry).validate(facet)
            checked += 1
    return checked


def read_events() -> list[dict]:
    path = settings.lineage_file()
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
