"""Domain rules: code lists, NIK/KK structure."""
