"""Welfare ranking: the PMT model, its fit, and desil."""
