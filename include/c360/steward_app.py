"""The steward page's FastAPI app (routes: :mod:`c360.steward`). No ``from __future__ import annotations``
here: FastAPI reads the handlers' annotations (``Request``) at runtime."""

import asyncio
from typing import Any

from airflow.api_fastapi.core_api.security import requires_authenticated
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from c360.steward import (
    URL_PREFIX,
    Entry,
    catalogue,
    check_history,
    dump,
    entry_named,
    score_history,
    statuses,
)
from c360.steward_html import check_page, dataset_page, overview_page, run_page


def create_app() -> FastAPI:
    # the docs routes FastAPI adds by itself take no dependency: they are turned off and declared below, so
    # they too require an authenticated user
    app = FastAPI(title="c360 data quality", dependencies=[Depends(requires_authenticated())],
                  docs_url=None, redoc_url=None, openapi_url=None)

    def bases(request: Request) -> tuple[str, str]:
        root = request.scope.get("root_path", "").rstrip("/")
        return root, root[: -len(URL_PREFIX)] if root.endswith(URL_PREFIX) else ""

    def entry(name: str) -> Entry:
        e = entry_named(name)
        if e is None:
            raise HTTPException(status_code=404, detail=f"no dataset {name!r}; known: "
                                                        f"{sorted(x.name for x in catalogue())}")
        return e

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> str:
        return await asyncio.to_thread(overview_page, *bases(request))

    @app.get("/datasets/{name}", response_class=HTMLResponse)
    async def dataset(request: Request, name: str) -> str:
        return await asyncio.to_thread(dataset_page, entry(name), *bases(request))

    @app.get("/datasets/{name}/runs/{run_id}", response_class=HTMLResponse)
    async def run(request: Request, name: str, run_id: str) -> str:
        return await asyncio.to_thread(run_page, entry(name), run_id, *bases(request))

    @app.get("/datasets/{name}/checks/{check:path}", response_class=HTMLResponse)
    async def check(request: Request, name: str, check: str) -> str:
        return await asyncio.to_thread(check_page, entry(name), check, *bases(request))

    @app.get("/api/datasets")
    async def datasets() -> list[dict[str, Any]]:
        return dump(await asyncio.to_thread(statuses))

    @app.get("/api/datasets/{name}/scores")
    async def scores(name: str) -> list[dict[str, Any]]:
        entry(name)
        return await asyncio.to_thread(score_history, name)

    @app.get("/api/datasets/{name}/checks/{check:path}")
    async def check_json(name: str, check: str) -> list[dict[str, Any]]:
        entry(name)
        return dump(await asyncio.to_thread(check_history, name, check))

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=f"{bases(request)[0]}/openapi.json", title="c360 data quality")

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(openapi_url=f"{bases(request)[0]}/openapi.json", title="c360 data quality")

    return app
