"""Federated inference from stored model parts; the rows must already be aligned (same order on all sides).

1. The guest sends every host a :class:`PredictRequest`: the row count and the opaque ids of that
   host's splits the model uses (an empty list for a host the model does not use).
2. Each host answers, for each of those ids, the bits "row goes left" over all rows
   (``x <= threshold``; missing values go right).
3. The guest routes every row through every tree and adds up the leaf weights.

Hosts learn the row count and which of their stored splits the model uses; they never receive
scores, leaf weights or the tree structure.  The guest learns, for every requested host split,
the side of every row (not the feature or the threshold) -- more than a node-by-node walk would
show it, but the hosts learn nothing about the paths rows take through the trees.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from jointly.channel import Channel
from jointly.errors import ConfigError, DataError, ProtocolViolation
from jointly.learn.vertical.secureboost.binning import as_matrix
from jointly.learn.vertical.secureboost.messages import (
    VERSION,
    PredictMasks,
    PredictRequest,
    expect,
    pack_bits,
    split_id_list,
    unpack_bits,
)
from jointly.learn.vertical.secureboost.model import GuestModel, HostModel

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def model_matrix(table: object, feature_names: Sequence[str], source: str) -> FloatArray:
    """``table`` as a float matrix with the model's columns: by name for a DataFrame, by position otherwise."""
    if isinstance(table, pd.DataFrame):
        missing = [c for c in feature_names if c not in {str(k) for k in table.columns}]
        if missing:
            raise DataError(source, f"missing columns {missing}")
        table = table.rename(columns=str)[list(feature_names)]
    matrix, _names = as_matrix(table, source=source)
    if matrix.shape[1] != len(feature_names):
        raise DataError(source, f"expected {len(feature_names)} columns, got {matrix.shape[1]}")
    return matrix


def predict_guest_raw(
    channel: Channel,
    model: GuestModel,
    X_guest: object,
    hosts: Sequence[str],
) -> FloatArray:
    """Raw scores ``(rows, n_outputs)``; every host in ``hosts`` must run :func:`predict_host` on the same channel."""
    features = model_matrix(X_guest, model.feature_names, "guest features")
    needed = model.remote_splits()
    unknown = [h for h in needed if h not in hosts and needed[h]]
    if unknown:
        raise ConfigError(f"the model uses splits of {unknown}, which are not among the hosts {list(hosts)}")
    n = features.shape[0]
    asked = {h: needed.get(h, []) for h in hosts}
    for host in hosts:
        ids = [bytes.fromhex(s) for s in asked[host]]
        channel.send(host, "request", PredictRequest(version=VERSION, n_rows=n, split_ids=ids))
    remote: dict[tuple[str, str], BoolArray] = {}
    for host in hosts:
        msg = expect(channel.recv(host, "masks"), PredictMasks, host)
        if not isinstance(msg.masks, list) or len(msg.masks) != len(asked[host]):
            raise ProtocolViolation(f"{host} answered {len(msg.masks)} masks for {len(asked[host])} splits")
        for sid, data in zip(asked[host], msg.masks, strict=True):
            remote[(host, sid)] = unpack_bits(data, n, f"{host}'s mask")
    return model.raw_scores(features, remote)


def predict_guest(
    channel: Channel,
    model: GuestModel,
    X_guest: object,
    hosts: Sequence[str],
) -> FloatArray:
    """Federated prediction, guest side: P(y=1) (binary), class probabilities (multiclass) or values (regression)."""
    return model.output(predict_guest_raw(channel, model, X_guest, hosts))


def predict_host(channel: Channel, model: HostModel, X_host: object, guest: str) -> None:
    """Federated prediction, host side: answer the guest's request with left/right bits of the asked splits."""
    features = model_matrix(X_host, model.feature_names, "host features")
    req = expect(channel.recv(guest, "request"), PredictRequest, guest)
    if req.version != VERSION:
        raise ProtocolViolation(f"guest speaks SecureBoost version {req.version!r}, this host {VERSION}")
    if req.n_rows != features.shape[0]:
        raise DataError("host features", f"the guest predicts {req.n_rows!r} rows, this host has {features.shape[0]}")
    ids = [s.hex() for s in split_id_list(req.split_ids, "split ids")]
    unknown = [s for s in ids if s not in model.splits]
    if unknown:
        raise ProtocolViolation(f"the guest asked for {len(unknown)} split ids this host's model does not hold")
    masks = model.left_masks(features, ids)
    channel.send(guest, "masks", PredictMasks(masks=[pack_bits(m) for m in masks]))
