"""jointly.config."""
