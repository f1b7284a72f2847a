"""Channels: how protocols exchange typed values with named parties."""

from jointly.channel.base import Channel, Endpoint
from jointly.channel.codec import decode, encode, message

__all__ = ["Channel", "Endpoint", "decode", "encode", "message"]
