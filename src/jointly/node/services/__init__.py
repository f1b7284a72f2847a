"""Service layer between the REST API / CLI and the node's storage and runtime."""
