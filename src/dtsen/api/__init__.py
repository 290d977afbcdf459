"""The registry API for program teams: published recipients through an authenticated, scoped DCI
Social Registry subset, every disclosure logged (docs/registry-api.md)."""
