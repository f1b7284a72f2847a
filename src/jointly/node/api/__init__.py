"""The node's REST API (FastAPI): :func:`create_api` builds the app over a node's services."""

from jointly.node.api.app import create_api

__all__ = ["create_api"]
