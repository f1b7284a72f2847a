"""jointly.data."""
