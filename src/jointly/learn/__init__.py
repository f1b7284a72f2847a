"""jointly.learn."""
