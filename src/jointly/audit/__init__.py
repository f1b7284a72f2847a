"""jointly.audit."""
