"""Notifications: program owners (email, signed webhooks), regions (their feedback) and data ops.

Messages are built here from published manifests and feedback summaries only: counts, version
numbers, regency codes, paths and checksums. No NIK or name can reach a message because none is
read. Sending is the caller's: the Airflow DAGs send email through the SMTP provider's hook and an
Airflow connection; webhooks are posted by `dtsen.notify.webhook`.
"""
