"""jointly.value."""
