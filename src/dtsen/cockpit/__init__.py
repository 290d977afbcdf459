"""The data-ops cockpit: round quality per region, versions and their audits, blocked candidates.

Served inside Airflow's UI by the plugin in plugins/dtsen_cockpit.py (`create_app` in app.py), read
from the warehouse read-only (data.py, sql/cockpit/cockpit.sql). Aggregates only.
"""
