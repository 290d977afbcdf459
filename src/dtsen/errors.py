"""The one error type a round's steps raise for bad input or configuration.

A DataError means a person has to act (fix a file, a setting, the order of rounds): retrying cannot
help, so Airflow fails the task at once, and the message says what to fix, in plain English, without
personal data. Anything else (a lost connection, a full disk, a bug) is retried.
"""

from __future__ import annotations


class DataError(Exception):
    """Bad input or configuration; never retried."""
