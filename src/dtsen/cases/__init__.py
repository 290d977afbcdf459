"""Verification cases (issue 26): a family to visit, from a flag or a household's objection to a field result."""
