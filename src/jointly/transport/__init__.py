"""jointly.transport."""
