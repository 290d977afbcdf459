"""Synthetic DTSEN population and update rounds, written in the contract layout."""
