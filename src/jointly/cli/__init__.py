"""jointly.cli."""
