# The project image: Python 3.11 with the exact production dependency set of requirements.lock, and
# the product package only (no development tooling, no sample data or its ground truth).
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client tini curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/dtsen
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir "uv==0.13.9" \
 && uv pip install --system --no-cache --require-hashes -r requirements.lock
COPY src/dtsen ./src/dtsen
COPY sql ./sql
COPY data/reference ./data/reference
COPY expectations ./expectations
COPY config ./config
COPY dags ./dags
COPY plugins ./plugins
RUN uv pip install --system --no-cache --no-deps -e .

ENV DTSEN_LANDING_ROOT=/data/landing \
    AIRFLOW_HOME=/opt/airflow \
    DTSEN_PUBLISH_ROOT=/data/publish \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["dtsen", "--help"]
