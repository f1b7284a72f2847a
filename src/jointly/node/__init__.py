"""jointly.node."""
