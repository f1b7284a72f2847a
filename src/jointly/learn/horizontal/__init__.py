"""Horizontal federated learning: parties hold different rows with the same columns."""
