"""Vertical (feature-partitioned) joint modeling: parties hold different columns of the same aligned rows."""
