"""The DTSEN cockpit in Airflow's UI: a "DTSEN" entry in the navigation and tabs on the
dtsen_update_round DAG and on its runs. The app and its pages live in the package (dtsen.cockpit);
every route is behind Airflow's own authentication and authorization (see dtsen.cockpit.app)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from dtsen.cockpit.app import create_app

PREFIX = "/dtsen"  # the app's mount point under the api-server


class DtsenCockpitPlugin(AirflowPlugin):
    name = "dtsen_cockpit"
    fastapi_apps = [{"app": create_app(), "url_prefix": PREFIX, "name": "DTSEN cockpit"}]
    # hrefs are relative to the UI's base URL (no leading slash), so they work behind a proxy path
    external_views = [
        {"name": "DTSEN", "href": "dtsen/", "destination": "nav", "url_route": "dtsen", "icon": None},
        {
            "name": "DTSEN rounds",
            "href": "dtsen/dag?dag_id={DAG_ID}",
            "destination": "dag",
            "url_route": "dtsen_dag",
        },
        {
            "name": "DTSEN round",
            "href": "dtsen/runs/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "dtsen_run",
        },
    ]
