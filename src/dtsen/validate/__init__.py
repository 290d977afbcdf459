"""Validation: Great Expectations suites over staging, row-level rejections derived from them."""
