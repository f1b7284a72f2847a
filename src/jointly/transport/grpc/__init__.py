"""jointly.transport.grpc."""
