"""jointly.dp."""
