"""Joint-job messaging between party nodes over gRPC with mutual TLS.

:class:`PeerServer` is a node's peer service; :meth:`PeerServer.open_job` gives the
:class:`GrpcEndpoint` (a :class:`jointly.channel.Endpoint`) that a job's
:class:`~jointly.channel.Channel` runs on; :class:`ControlClient` lets the CLI call
a node's control methods as a given party.  Imported only by ``runtime``, ``node``
and ``cli``: protocols see a ``Channel``, never this package.
"""

from jointly.transport.grpc.client import ControlClient
from jointly.transport.grpc.endpoint import GrpcEndpoint
from jointly.transport.grpc.envelope import DEFAULT_CHUNK_BYTES
from jointly.transport.grpc.server import PeerServer

__all__ = ["DEFAULT_CHUNK_BYTES", "ControlClient", "GrpcEndpoint", "PeerServer"]
