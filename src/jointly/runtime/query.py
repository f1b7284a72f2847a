"""Joint query jobs: a client looks its ids up in a server's set (a blacklist, an id register).

``labeled_psi``
    an OPRF over Curve25519 (:mod:`jointly.protocols.psi.labeled`).  The server preprocesses its
    set once per dataset version: the OPRF key and the encrypted table are kept on the server's node
    (``<jobs>/../cache/labeled_psi/<digest>``) and reused by later queries; the client's node keeps
    the downloaded table too and downloads it again only when the server's set changed.  The client
    learns which of its ids are in the set and their labels; the server learns how many ids were asked.
``pir``
    keyword PIR over LWE (:mod:`jointly.protocols.pir`): the server learns nothing about the keys.

Stages: ``load`` (each side reads its table), ``query`` (the protocol).  The client publishes
``results.csv`` (id, found, label); the server's summary holds only counts.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jointly.channel import Channel
from jointly.config.job import JobSpec, QuerySpec
from jointly.data.io import atomic_write_bytes, atomic_write_json, write_table
from jointly.data.tables import load_table
from jointly.errors import ConfigError, DataError

if TYPE_CHECKING:  # runtime.jobs imports this module
    from jointly.runtime.jobs import PartyContext

RESULTS_FILE = "results.csv"


def _q(spec: JobSpec) -> QuerySpec:
    if spec.query is None:
        raise ConfigError("a query job needs a 'query' section")
    return spec.query


def _cache_dir(ctx: PartyContext, method: str) -> Path | None:
    if ctx.jobs_dir is None:
        return None
    return ctx.jobs_dir.parent / "cache" / method


def _server_items(ctx: PartyContext) -> tuple[dict[str, bytes], str]:
    """The server's ids with their labels (UTF-8), and a digest of both (the dataset version)."""
    ref = ctx.spec.parties[ctx.party]
    if ref.label is None:
        raise ConfigError(f"the server {ctx.party!r} must name its label column")
    table = load_table(ctx.data_path(), id_column=ref.id_column, columns=[ref.label])
    labels = table.frame[ref.label].astype(str).tolist()
    items = {str(i): lab.encode() for i, lab in zip(table.ids, labels, strict=True)}
    if len(items) != len(labels):
        raise DataError(str(table.path), f"duplicate ids in {ref.id_column!r}; each id must appear once")
    digest = hashlib.sha256()
    for key in sorted(items):
        digest.update(key.encode() + b"\x00" + items[key] + b"\x01")
    return items, digest.hexdigest()


def _client_ids(ctx: PartyContext, limit: int) -> list[str]:
    ref = ctx.spec.parties[ctx.party]
    table = load_table(ctx.data_path(), id_column=ref.id_column, columns=[])
    ids = list(dict.fromkeys(str(i) for i in table.ids))
    if len(ids) > limit:
        raise DataError(str(table.path), f"{len(ids)} ids to look up; the job allows at most {limit} (query.max_ids)")
    if not ids:
        raise DataError(str(table.path), "no ids to look up")
    return ids


def run_query(ctx: PartyContext, channel: Channel, out: Path) -> dict[str, Any]:
    """This party's side of a ``query`` job."""
    q = _q(ctx.spec)
    if q.method == "labeled_psi":
        return _labeled_psi(ctx, channel, out, q)
    return _pir(ctx, channel, out, q)


# -- labeled PSI ------------------------------------------------------------------------------
def _labeled_psi(ctx: PartyContext, channel: Channel, out: Path, q: QuerySpec) -> dict[str, Any]:
    from jointly.protocols.psi.labeled import (
        LabeledPsiConfig,
        LabeledTable,
        run_labeled_psi_client,
        run_labeled_psi_server,
    )

    config = LabeledPsiConfig(max_query_ids=q.max_ids, workers=ctx.workers)
    cache = _cache_dir(ctx, "labeled_psi")
    channel.sub("load")
    ctx.progress.update("load data", 0, 1)
    if ctx.party == q.server:
        items, digest = _server_items(ctx)
        ctx.progress.update("load data", 1, 1)
        ctx.progress.update("preprocess the set", 0, 1)
        server, reused = _labeled_server(cache, digest, items, config)
        ctx.progress.update("preprocess the set", 1, 1)
        asked = run_labeled_psi_server(channel.sub("query"), q.client, server)
        summary = {"kind": "query", "method": "labeled_psi", "role": "server", "set_size": len(items)}
        return summary | {"ids_asked": asked, "preprocessed_earlier": reused}
    ids = _client_ids(ctx, q.max_ids)
    ctx.progress.update("load data", 1, 1)
    path = None if cache is None else cache / "client" / f"{q.server}.table"
    cached = _read_cached(path, LabeledTable)
    found, table = run_labeled_psi_client(channel.sub("query"), q.server, ids, table=cached, config=config)
    downloaded = cached is None or cached.table_id != table.table_id
    if downloaded and path is not None:
        from jointly.channel.codec import encode

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, encode(table))
    return _publish_results(out, ids, found, method="labeled_psi", extra={"table_downloaded": downloaded})


def _labeled_server(cache: Path | None, digest: str, items: dict[str, bytes], config: Any) -> tuple[Any, bool]:
    """The server for this version of the set: restored from the node's cache, or preprocessed and cached.

    The cache holds the OPRF key (owner-only file) and the table; a changed set is a new version.
    """
    from jointly.channel.codec import encode
    from jointly.crypto.ecc import EcdhKey
    from jointly.protocols.psi.labeled import LabeledPsiServer, LabeledTable

    if cache is None:
        return LabeledPsiServer(items, config=config), False
    directory = cache / "server" / digest
    key_file, table_file = directory / "oprf.key", directory / "table.bin"
    table = _read_cached(table_file, LabeledTable)
    if table is not None and key_file.is_file():
        try:
            return LabeledPsiServer.restore(table, config=config, key=EcdhKey(key_file.read_bytes())), True
        except (ConfigError, ValueError):
            pass  # a damaged cache is rebuilt below
    secret = secrets.token_bytes(32)
    server = LabeledPsiServer(items, config=config, key=EcdhKey(secret))
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(key_file, secret)
    os.chmod(key_file, 0o600)
    atomic_write_bytes(table_file, encode(server.table()))
    return server, False


def _read_cached(path: Path | None, kind: type) -> Any:
    """A cached wire message of type ``kind``, or None (missing or unreadable: it is simply rebuilt)."""
    from jointly.channel.codec import decode
    from jointly.errors import CodecError

    if path is None or not path.is_file():
        return None
    try:
        value = decode(path.read_bytes())
    except (CodecError, OSError):
        return None
    return value if isinstance(value, kind) else None


# -- PIR ---------------------------------------------------------------------------------------
def _pir(ctx: PartyContext, channel: Channel, out: Path, q: QuerySpec) -> dict[str, Any]:
    from jointly.protocols.pir import KeywordPirServer, run_pir_client, run_pir_server

    channel.sub("load")
    ctx.progress.update("load data", 0, 1)
    if ctx.party == q.server:
        items, _ = _server_items(ctx)
        ctx.progress.update("load data", 1, 1)
        width = max((len(v) for v in items.values()), default=1) or 1
        ctx.progress.update("preprocess the database", 0, 1)
        server = KeywordPirServer({k.encode(): v.ljust(width, b"\x00") for k, v in items.items()}, value_bytes=width)
        ctx.progress.update("preprocess the database", 1, 1)
        answered = run_pir_server(channel.sub("query"), q.client, server, queries=q.max_ids)
        return {"kind": "query", "method": "pir", "role": "server", "set_size": len(items), "queries": answered}
    ids = _client_ids(ctx, q.max_ids)
    ctx.progress.update("load data", 1, 1)
    raw = run_pir_client(channel.sub("query"), q.server, [i.encode() for i in ids])
    found = {i: (None if raw.get(i.encode()) is None else raw[i.encode()]) for i in ids}
    cleaned = {i: (v.rstrip(b"\x00") if v is not None else None) for i, v in found.items()}
    return _publish_results(out, ids, cleaned, method="pir", extra={})


def _publish_results(
    out: Path, ids: list[str], found: dict[str, bytes | None], *, method: str, extra: dict[str, Any]
) -> dict[str, Any]:
    labels = [found.get(i) for i in ids]
    frame = pd.DataFrame(
        {
            "id": ids,
            "found": [v is not None for v in labels],
            "label": [v.decode("utf-8", "replace") if v is not None else "" for v in labels],
        }
    )
    write_table(frame, out / RESULTS_FILE)
    hits = int(np.sum(frame["found"]))
    summary = {"kind": "query", "method": method, "role": "client", "ids_asked": len(ids), "found": hits}
    summary["results_file"] = RESULTS_FILE
    atomic_write_json(out / "query.json", {"ids_asked": len(ids), "found": hits, **extra})
    return summary | extra
