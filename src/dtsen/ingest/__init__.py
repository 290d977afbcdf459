"""Ingest: discover a round in the landing zone, check manifests, stage files with COPY."""
