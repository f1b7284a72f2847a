"""Keyword PIR between two parties over a :class:`~jointly.channel.Channel`.

Steps (server ``S`` holds a :class:`~jointly.protocols.pir.keyword.KeywordPirServer`,
client ``C`` a list of keys):

1. *hello* ``C -> S``: protocol version, the SHA-256 of the setup ``C`` has cached (empty if
   none) and the number of keys ``k``.
2. *setup* ``S -> C``: the :class:`~jointly.protocols.pir.keyword.KeywordPirSetup`, or None
   if ``C``'s cached one is current.
3. *queries/j*, *answers/j*: ``C`` sends its queries in batches of :data:`BATCH`; ``S``
   answers each batch in one pass over its table.

``S`` learns ``k`` and whether ``C`` had the current setup cached; its view of the queries
is a sequence of LWE vectors independent of the keys (see
:mod:`~jointly.protocols.pir.simplepir`).  ``C`` learns the value (or absence) of each of its
keys, and the other slots of the buckets it fetched (see
:mod:`~jointly.protocols.pir.keyword`).  Malformed messages raise
:class:`~jointly.errors.ProtocolViolation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jointly.channel import Channel
from jointly.channel.codec import message
from jointly.errors import ConfigError, ProtocolViolation
from jointly.protocols.pir.keyword import KeywordPirClient, KeywordPirServer
from jointly.protocols.pir.simplepir import PirAnswer

VERSION = 1
#: queries per message (a query is ``4 * cols`` bytes: about 23 KB for 1M records of 32 bytes)
BATCH = 64
MAX_KEYS = 1 << 20
_NAMESPACE = "pir"


@message("jointly.pir.Hello")
@dataclass(frozen=True)
class Hello:
    version: int
    setup_digest: bytes
    count: int


def run_pir_server(channel: Channel, client: str, server: KeywordPirServer, *, queries: int | None = None) -> int:
    """Answer one client's keyword-PIR session; returns the number of keys it looked up.

    ``queries``, if given, is the most keys the client may look up; a client asking for more
    is refused with :class:`ProtocolViolation`.
    """
    ch = channel.sub(_NAMESPACE)
    hello = ch.recv(client, "hello")
    if not isinstance(hello, Hello) or hello.version != VERSION:
        raise ProtocolViolation(f"{client!r} did not send a version-{VERSION} PIR hello")
    count, digest = hello.count, hello.setup_digest
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_KEYS:
        raise ProtocolViolation(f"{client!r} asked for a bad number of keys: {count!r}")
    if queries is not None and count > queries:
        raise ProtocolViolation(f"{client!r} asked for {count} keys, more than the {queries} allowed")
    if not isinstance(digest, bytes):
        raise ProtocolViolation("the setup digest must be bytes")
    ch.send(client, "setup", None if digest == server.setup_digest() else server.setup())
    for j, start in enumerate(range(0, count, BATCH)):
        batch = ch.recv(client, f"queries/{j}")
        expected = min(BATCH, count - start)
        if not isinstance(batch, list) or len(batch) != expected:
            raise ProtocolViolation(f"{client!r} sent a query batch that is not a list of {expected} queries")
        ch.send(client, f"answers/{j}", server.answer(batch))
    return count


def run_pir_client(
    channel: Channel, server: str, keys: Sequence[bytes], *, client: KeywordPirClient | None = None
) -> dict[bytes, bytes | None]:
    """Look up ``keys`` on ``server``: each maps to its value, or None if absent.

    Pass ``client`` (a :class:`KeywordPirClient` built from an earlier setup) to reuse a
    cached setup; the server sends a fresh one only if it changed.
    """
    unique = list(dict.fromkeys(keys))
    if not all(isinstance(k, bytes) for k in unique):
        raise ConfigError("PIR keys must be bytes")
    if len(unique) > MAX_KEYS:
        raise ConfigError(f"at most {MAX_KEYS} keys per session")
    ch = channel.sub(_NAMESPACE)
    digest = client.setup_digest if client is not None else b""
    ch.send(server, "hello", Hello(version=VERSION, setup_digest=digest, count=len(unique)))
    setup = ch.recv(server, "setup")
    if setup is not None:
        client = KeywordPirClient(setup)  # type: ignore[arg-type]
    elif client is None:
        raise ProtocolViolation(f"{server!r} sent no setup to a client that has none")
    result: dict[bytes, bytes | None] = {}
    for j, start in enumerate(range(0, len(unique), BATCH)):
        batch_keys = unique[start : start + BATCH]
        made = [client.query(k) for k in batch_keys]
        ch.send(server, f"queries/{j}", [q for qs, _ in made for q in qs])
        answers = ch.recv(server, f"answers/{j}")
        if not isinstance(answers, list) or len(answers) != len(batch_keys):
            raise ProtocolViolation(f"{server!r} sent {type(answers).__name__} instead of {len(batch_keys)} answers")
        for key, (_, state), answer in zip(batch_keys, made, answers, strict=True):
            if not isinstance(answer, PirAnswer):
                raise ProtocolViolation(f"{server!r} sent a {type(answer).__name__} instead of a PirAnswer")
            result[key] = client.decode([answer], state)
    return result
