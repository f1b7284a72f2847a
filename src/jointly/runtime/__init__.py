"""jointly.runtime."""
