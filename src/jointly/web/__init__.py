"""jointly.web."""
