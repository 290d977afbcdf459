"""The DTSEN cockpit in Airflow's UI: a "DTSEN" entry in the navigation and a tab on DAGs and on their
runs. Airflow shows a dag / dag_run tab on every DAG, so the tab's URL names the DAG and the app answers
for each: dtsen_update_round's rounds, the versions dtsen_notify_programs announces, and a line saying
there is nothing for any other DAG. The app and its pages live in the package (dtsen.cockpit); every
route is behind Airflow's own authentication and authorization (see dtsen.cockpit.app)."""

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
            "name": "DTSEN",
            "href": "dtsen/dags/{DAG_ID}",
            "destination": "dag",
            "url_route": "dtsen_dag",
        },
        {
            "name": "DTSEN",
            "href": "dtsen/dags/{DAG_ID}/runs/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "dtsen_run",
        },
    ]
