"""Airflow 3 plugin: the data steward's quality page inside the Airflow UI ("Data quality" in the menu).

The FastAPI app (include/c360/steward.py) is mounted by the API server under /c360-quality; every route
requires an authenticated Airflow user. The external view embeds the page in the UI.
"""

from airflow.plugins_manager import AirflowPlugin

from c360 import steward


class C360StewardPlugin(AirflowPlugin):
    name = "c360_steward"
    fastapi_apps = [{"app": steward.create_app(), "url_prefix": steward.URL_PREFIX, "name": "c360 data quality"}]
    external_views = [{
        "name": "Data quality",
        "href": steward.URL_PREFIX.lstrip("/") + "/",
        "destination": "nav",
        "category": "browse",
        "url_route": "c360-quality",
    }]
