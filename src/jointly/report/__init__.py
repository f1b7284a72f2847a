"""jointly.report."""
