"""Airflow 3 plugin: the data steward's quality page inside the Airflow UI ("Data quality" in the menu).

The FastAPI app (include/c360/steward.py) is mounted by the API server under /c360-quality; every route,
the OpenAPI schema and docs included, requires an authenticated Airflow user. The external view embeds the page
in the UI at /plugin/c360-quality: an iframe whose src is ``href``, relative so that it resolves against the
UI's base URL (a deployment under a path prefix included). Airflow 3.3 then mirrors the frame's path into the
address bar (/plugin/c360-quality/c360-quality/ for the overview, …/datasets/<name> for a dataset), which is
what makes the page's own views bookmarkable; the page takes the menu entry's bare address as "open the
overview" (include/c360/templates/steward/base.html).
"""

from airflow.plugins_manager import AirflowPlugin

from c360 import steward, steward_app


class C360StewardPlugin(AirflowPlugin):
    name = "c360_steward"
    fastapi_apps = [{"app": steward_app.create_app(), "url_prefix": steward.URL_PREFIX, "name": "c360 data quality"}]
    external_views = [{
        "name": "Data quality",
        "href": steward.URL_PREFIX.lstrip("/") + "/",
        "destination": "nav",
        "category": "browse",
        "url_route": steward.URL_ROUTE,
    }]
