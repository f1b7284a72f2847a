"""jointly.crypto."""
