"""DTSEN update pipeline: the plain-Python logic behind the Airflow DAGs."""

__version__ = "0.1.0"
