"""jointly.protocols."""
