"""Private information retrieval: fetch a record (by index or by key) from one server that learns nothing.

* :mod:`~jointly.protocols.pir.simplepir`: index PIR in the style of SimplePIR (LWE, one hint);
  :class:`PirServer` / :class:`PirClient`.
* :mod:`~jointly.protocols.pir.keyword`: keyword PIR on top (keys hashed into buckets);
  :class:`KeywordPirServer` / :class:`KeywordPirClient`.
* :mod:`~jointly.protocols.pir.protocol`: the two-party session over a channel,
  :func:`run_pir_server` / :func:`run_pir_client`.
* :mod:`~jointly.protocols.pir.params`: LWE parameters, their security level and the decoding-error bound.
"""

from __future__ import annotations

from jointly.protocols.pir.keyword import (
    KeywordPirClient,
    KeywordPirServer,
    KeywordPirSetup,
    KeywordQueryState,
    setup_digest,
)
from jointly.protocols.pir.params import PirParams, choose_params
from jointly.protocols.pir.protocol import run_pir_client, run_pir_server
from jointly.protocols.pir.simplepir import PirAnswer, PirClient, PirQuery, PirServer, PirSetup, QueryState

__all__ = [
    "KeywordPirClient",
    "KeywordPirServer",
    "KeywordPirSetup",
    "KeywordQueryState",
    "PirAnswer",
    "PirClient",
    "PirParams",
    "PirQuery",
    "PirServer",
    "PirSetup",
    "QueryState",
    "choose_params",
    "run_pir_client",
    "run_pir_server",
    "setup_digest",
]
