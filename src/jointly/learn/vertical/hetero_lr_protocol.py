"""The training rounds of hetero LR, one function per role and mode.

The messages, their scales and what each party learns are specified in the
docstring of :mod:`jointly.learn.vertical.hetero_lr`; this module implements
them.  All values travel as integers: a real value ``x`` "at scale s" is
``round(x * 2**(s * frac_bits))``; ``f`` below is ``frac_bits``.

* features: scale 1 (``f``); host weights ``W``: scale 1;
* partial scores ``U`` and the residual ``4d``: scale 2;
* gradients ``X^T 4d``: scale 3; a weight update before rescaling: scale 5;
* the loss, multiplied by 8: scale 4.

Every ciphertext that goes to the holder of its private key is freshly
randomised first (by adding a fresh encryption of the mask, or ``rerandomize``):
the key holder can recover a ciphertext's randomness, and the randomness of a
homomorphic product reveals the plaintext multipliers (features) to it otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jointly.channel import Channel
from jointly.crypto.paillier import (
    EncryptedVector,
    PaillierPrivateKey,
    PaillierPublicKey,
    generate_paillier_keypair,
)
from jointly.errors import ConfigError, DataError, KeyMismatch, ProtocolViolation
from jointly.learn.vertical.hetero_lr_common import (
    LOG2,
    PROTOCOL_VERSION,
    VALUE_BITS,
    FloatArray,
    Hello,
    HeteroLRConfig,
    IntVector,
    epoch_batches,
    fixed,
    fixed_scalar,
    int_matmul_t,
    random_mask,
)
from jointly.progress import Progress

MAX_WIDTH = 100_000  # most feature columns a party may have
TWO_PARTY = "two_party"
ARBITER = "arbiter"
TASK = "hetero_lr: epochs"


@dataclass(frozen=True)
class TrainResult:
    """What one party takes away from training: its own weights (empty for the arbiter) and the run's course."""

    weights: FloatArray
    loss_history: list[float]
    n_iter: int
    converged: bool


# -- hello --------------------------------------------------------------------------------
def guest_hello(
    ch: Channel, cfg: HeteroLRConfig, mode: str, n_rows: int, hosts: Sequence[str], arbiter: str | None
) -> None:
    """Send the job's shape to every peer and check every host's answer (same rows, mode and config)."""
    hello = Hello(PROTOCOL_VERSION, mode, cfg.digest(), n_rows, list(hosts))
    ch.broadcast("hello", hello, to=[*hosts, *([arbiter] if arbiter else [])])
    for host in hosts:
        theirs = _recv_hello(ch, host)
        _check_hello(theirs, mode, cfg, host)
        if theirs.n_rows != n_rows:
            raise DataError("aligned rows", f"the guest has {n_rows} rows but host {host!r} has {theirs.n_rows}")


def host_hello(ch: Channel, cfg: HeteroLRConfig, mode: str, n_rows: int, guest: str) -> list[str]:
    """Answer the guest's hello; returns the guest's host order (this host included)."""
    ch.send(guest, "hello", Hello(PROTOCOL_VERSION, mode, cfg.digest(), n_rows, []))
    theirs = _recv_hello(ch, guest)
    _check_hello(theirs, mode, cfg, guest)
    if theirs.n_rows != n_rows:
        raise DataError("aligned rows", f"this host has {n_rows} rows but the guest {guest!r} has {theirs.n_rows}")
    if ch.party not in theirs.hosts or len(set(theirs.hosts)) != len(theirs.hosts):
        raise ConfigError(f"the guest's host list {theirs.hosts} does not name {ch.party!r} exactly once")
    return list(theirs.hosts)


def arbiter_hello(ch: Channel, cfg: HeteroLRConfig, guest: str, hosts: Sequence[str]) -> tuple[int, list[str]]:
    """Check the guest's hello; returns the row count and the guest's host order."""
    theirs = _recv_hello(ch, guest)
    _check_hello(theirs, ARBITER, cfg, guest)
    if sorted(theirs.hosts) != sorted(hosts):
        raise ConfigError(f"the guest trains with hosts {theirs.hosts}, the arbiter expects {list(hosts)}")
    return theirs.n_rows, list(theirs.hosts)


def _recv_hello(ch: Channel, frm: str) -> Hello:
    msg = ch.recv(frm, "hello")
    if not isinstance(msg, Hello):
        raise ProtocolViolation(f"{frm!r} sent a malformed hello")
    valid = isinstance(msg.n_rows, int) and msg.n_rows >= 0 and isinstance(msg.hosts, list)
    if not valid or not all(isinstance(h, str) for h in msg.hosts):
        raise ProtocolViolation(f"{frm!r} sent a malformed hello")
    return msg


def _check_hello(theirs: Hello, mode: str, cfg: HeteroLRConfig, frm: str) -> None:
    if theirs.version != PROTOCOL_VERSION:
        raise ConfigError(f"{frm!r} runs hetero LR protocol version {theirs.version}, this party {PROTOCOL_VERSION}")
    if theirs.mode != mode:
        raise ConfigError(f"{frm!r} trains in mode {theirs.mode!r}, this party in {mode!r}")
    if theirs.config_digest != cfg.digest():
        raise ConfigError(f"{frm!r} has a different HeteroLRConfig (digest {theirs.config_digest[:12]}...)")


# -- wire helpers ---------------------------------------------------------------------------
def _send_key(ch: Channel, to: Sequence[str], pk: PaillierPublicKey) -> None:
    ch.broadcast("key", pk.to_wire(), to=list(to))


def _recv_key(ch: Channel, frm: str, cfg: HeteroLRConfig) -> PaillierPublicKey:
    try:
        pk = PaillierPublicKey.from_wire(ch.recv(frm, "key"), allow_unsafe_key_size=cfg.allow_unsafe_key_size)
    except (TypeError, ValueError, KeyError) as exc:
        raise ProtocolViolation(f"{frm!r} sent a malformed public key") from exc
    if pk.bits != cfg.key_bits:
        raise ProtocolViolation(f"{frm!r} sent a {pk.bits}-bit key; the config asks for {cfg.key_bits} bits")
    return pk


def _recv_vector(ch: Channel, frm: str, tag: str, pk: PaillierPublicKey, length: int | None) -> EncryptedVector:
    try:
        ev = EncryptedVector.from_wire(pk, ch.recv(frm, tag))
    except KeyMismatch as exc:
        raise ProtocolViolation(f"{frm!r} sent {tag!r} under the wrong key") from exc
    if ev.frac_bits != 0:
        raise ProtocolViolation(f"{frm!r} sent {tag!r} with frac_bits {ev.frac_bits}, expected integers")
    if length is None:
        if not 1 <= len(ev) <= MAX_WIDTH:
            raise ProtocolViolation(f"{frm!r} sent {len(ev)} values under {tag!r}")
    elif len(ev) != length:
        raise ProtocolViolation(f"{frm!r} sent {len(ev)} values under {tag!r}, expected {length}")
    return ev


def _recv_ints(ch: Channel, frm: str, tag: str, length: int, max_bits: int) -> IntVector:
    msg = ch.recv(frm, tag)
    if not (isinstance(msg, np.ndarray) and msg.dtype == object and msg.shape == (length,)):
        raise ProtocolViolation(f"{frm!r} sent a malformed integer vector under {tag!r}")
    if not all(isinstance(v, int) and v.bit_length() <= max_bits for v in msg.tolist()):
        raise ProtocolViolation(f"{frm!r} sent out-of-range integers under {tag!r}")
    return msg


def _recv_flag(ch: Channel, frm: str, tag: str) -> bool:
    msg = ch.recv(frm, tag)
    if not isinstance(msg, bool):
        raise ProtocolViolation(f"{frm!r} sent a non-boolean {tag!r}")
    return msg


def _decrypt(sk: PaillierPrivateKey, ev: EncryptedVector, frm: str) -> IntVector:
    try:
        return sk.decrypt_ints(ev)
    except OverflowError as exc:
        raise ProtocolViolation(f"a value from {frm!r} decrypts outside the plaintext range") from exc


def _column(v: IntVector) -> IntVector:
    return v.reshape(-1, 1)


def _shift(v: IntVector, bits: int) -> IntVector:
    out = np.empty(len(v), dtype=object)
    out[:] = [int(x) >> bits for x in v]
    return out


def _to_float(v: IntVector, bits: int) -> FloatArray:
    return np.array([int(x) / (1 << bits) for x in v], dtype=np.float64)


def _converged(losses: list[float], cfg: HeteroLRConfig) -> bool:
    return len(losses) > 1 and abs(losses[-1] - losses[-2]) < cfg.tol


class _KeyHolder:
    """The private key's services: rescaling masked host weights and opening masked values."""

    def __init__(self, sk: PaillierPrivateKey, cfg: HeteroLRConfig) -> None:
        self.sk = sk
        self.pk = sk.public_key
        self.cfg = cfg
        self.widths: dict[str, int] = {}

    def _width(self, party: str, ev: EncryptedVector) -> None:
        if self.widths.setdefault(party, len(ev)) != len(ev):
            raise ProtocolViolation(f"{party!r} changed its number of weights from {self.widths[party]} to {len(ev)}")

    def refresh(self, ch: Channel, host: str) -> None:
        """``[[P + rho]] -> [[floor((P + rho) / 2**4f)]]``: the host's update rescaled from scale 5 to 1."""
        ev = _recv_vector(ch, host, "refresh", self.pk, None)
        self._width(host, ev)
        values = _shift(_decrypt(self.sk, ev, host), 4 * self.cfg.frac_bits)
        ch.send(host, "refreshed", self.sk.encrypt_ints(values).to_wire())

    def open(self, ch: Channel, party: str, tag: str) -> None:
        """Decrypt a masked vector and send the plaintext back to ``party`` (who alone can unmask it)."""
        ev = _recv_vector(ch, party, tag, self.pk, None)
        ch.send(party, f"{tag}_plain", _decrypt(self.sk, ev, party))


def _host_update(
    ch: Channel,
    holder: str,
    pk: PaillierPublicKey,
    w: EncryptedVector,
    d4: EncryptedVector,
    x_rows: IntVector,
    lr: float,
    cfg: HeteroLRConfig,
) -> EncryptedVector:
    """``w <- (1 - lr*alpha) w - lr/(4b) X^T 4d`` on encrypted weights; the key holder rescales it under a mask."""
    f = cfg.frac_bits
    grad = d4.dot(x_rows)  # X^T 4d, scale 3
    keep = fixed_scalar(1.0 - lr * cfg.alpha, 4 * f)
    step = fixed_scalar(lr / (4 * x_rows.shape[0]), 2 * f)
    update = w * keep - grad * step  # scale 5
    rho = random_mask(len(w), 5 * f + VALUE_BITS + cfg.mask_bits)
    ch.send(holder, "refresh", (update + pk.encrypt_ints(rho)).to_wire())
    rescaled = _recv_vector(ch, holder, "refreshed", pk, len(w))
    return rescaled - _shift(rho, 4 * f)


def _host_reveal(
    ch: Channel, holder: str, pk: PaillierPublicKey, w: EncryptedVector, cfg: HeteroLRConfig
) -> FloatArray:
    """Open the host's final weights to the host alone (the holder sees them masked)."""
    bits = cfg.frac_bits + VALUE_BITS + cfg.mask_bits
    rho = random_mask(len(w), bits)
    ch.send(holder, "w", (w + pk.encrypt_ints(rho)).to_wire())
    opened = _recv_ints(ch, holder, "w_plain", len(w), bits + 2 * VALUE_BITS)
    return _to_float(opened - rho, cfg.frac_bits)


def _guest_step(w: FloatArray, grad4: IntVector, b: int, lr: float, cfg: HeteroLRConfig) -> FloatArray:
    """The guest's plain SGD step from ``X^T 4d`` at scale 3 (last weight = intercept, not penalised)."""
    g = _to_float(grad4, 3 * cfg.frac_bits) / (4 * b)
    penal = np.r_[np.ones(w.size - 1), 0.0]
    return np.asarray(w - lr * (g + cfg.alpha * penal * w), dtype=np.float64)


class _GuestData:
    """The guest's per-row constants at the protocol's scales."""

    def __init__(self, xg: FloatArray, y: np.ndarray, cfg: HeteroLRConfig) -> None:
        f = cfg.frac_bits
        self.x = xg
        self.xint = fixed(xg, f)
        self.n, self.m = xg.shape
        self.shift_y = fixed(-2.0 * (2.0 * y - 1.0), 2 * f)  # (2 - 4y) at scale 2: 4d = z + 2 - 4y
        self.log_term = fixed_scalar(8 * LOG2, 4 * f)
        # bit length of the largest |x| at scale 1: sizes the masks that hide sums X^T v
        self.x_bits = max(int(abs(v)).bit_length() for v in self.xint.reshape(-1))

    def scores(self, w: FloatArray, rows: np.ndarray, cfg: HeteroLRConfig) -> IntVector:
        return fixed(self.x[rows] @ w, 2 * cfg.frac_bits)

    def plain_loss(self, u_g: IntVector, rows: np.ndarray) -> int:
        """``sum(8 log 2 - 4 y' a + a^2)`` at scale 4 for scores ``a`` at scale 2."""
        shift = self.shift_y[rows]
        return int(sum(a * a + 2 * s * a for a, s in zip(u_g, shift, strict=True))) + len(rows) * self.log_term


def _mask_bits(cfg: HeteroLRConfig, rows: int, x_bits: int, value_bits: int) -> int:
    return x_bits + rows.bit_length() + value_bits + cfg.mask_bits


# -- mode 1: guest holds the key ---------------------------------------------------------------
def guest_two_party(
    ch: Channel, cfg: HeteroLRConfig, xg: FloatArray, y: np.ndarray, hosts: Sequence[str], progress: Progress
) -> TrainResult:
    f = cfg.frac_bits
    pk, sk = generate_paillier_keypair(cfg.key_bits, allow_unsafe_key_size=cfg.allow_unsafe_key_size)
    _send_key(ch, hosts, pk)
    lead = hosts[0]
    pk_lead = _recv_key(ch, lead, cfg)
    holder = _KeyHolder(sk, cfg)
    data = _GuestData(xg, y, cfg)
    r_bits = 2 * f + VALUE_BITS + cfg.mask_bits
    w = np.zeros(data.m)
    losses: list[float] = []
    converged = False
    epoch = 0
    for epoch in range(cfg.max_iter):
        ech = ch.sub(f"epoch-{epoch}")
        lr = cfg.learning_rate_at(epoch)
        loss_plain = 0
        for k, rows in enumerate(epoch_batches(data.n, cfg.batch_size, cfg.seed, epoch)):
            bch = ech.sub(k)
            b = rows.size
            u_g = data.scores(w, rows, cfg)
            masked_u = _decrypt(sk, _recv_vector(bch, lead, "v", pk, b), lead)  # U + R
            r_enc = _recv_vector(bch, lead, "r", pk_lead, b)  # [[R]] under the lead host's key
            a = u_g + masked_u  # z + R at scale 2
            d_masked = a + data.shift_y[rows]  # 4d + R
            bch.send(lead, "d", sk.encrypt_ints(d_masked).to_wire())
            corr_bits = _mask_bits(cfg, b, data.x_bits, r_bits)
            sigma = random_mask(data.m, corr_bits)
            corr = r_enc.dot(data.xint[rows]) + pk_lead.encrypt_ints(sigma)
            bch.send(lead, "corr", corr.to_wire())
            xt_r = _recv_ints(bch, lead, "corr_plain", data.m, corr_bits + 2) - sigma  # X^T R
            grad4 = int_matmul_t(data.xint[rows], d_masked) - xt_r  # X^T 4d at scale 3
            w = _guest_step(w, grad4, b, lr, cfg)
            if cfg.convergence == "loss":
                loss_plain += data.plain_loss(a, rows)
            for host in hosts:
                holder.refresh(bch, host)
        stop = False
        if cfg.convergence == "loss":
            loss_host = int(_decrypt(sk, _recv_vector(ech, lead, "loss", pk, 1), lead)[0])
            losses.append((loss_plain + loss_host) / (8 * data.n * (1 << 4 * f)))
            stop = converged = _converged(losses, cfg)
            ech.broadcast("stop", stop, to=list(hosts))
        progress.update(TASK, epoch + 1, cfg.max_iter)
        if stop:
            break
    final = ch.sub("final")
    for host in hosts:
        holder.open(final, host, "w")
    return TrainResult(w, losses, epoch + 1, converged)


def host_two_party(
    ch: Channel, cfg: HeteroLRConfig, xh: FloatArray, guest: str, hosts: Sequence[str], progress: Progress
) -> TrainResult:
    f = cfg.frac_bits
    pk = _recv_key(ch, guest, cfg)
    lead = hosts[0]
    others = [h for h in hosts if h != lead]
    is_lead = ch.party == lead
    sk_lead: PaillierPrivateKey | None = None
    if is_lead:
        pk_lead, sk_lead = generate_paillier_keypair(cfg.key_bits, allow_unsafe_key_size=cfg.allow_unsafe_key_size)
        _send_key(ch, [guest], pk_lead)
    xint = fixed(xh, f)
    n, m = xh.shape
    r_bits = 2 * f + VALUE_BITS + cfg.mask_bits
    w = pk.encrypt_ints(np.zeros(m, dtype=np.int64))
    converged = False
    epoch = 0
    for epoch in range(cfg.max_iter):
        ech = ch.sub(f"epoch-{epoch}")
        lr = cfg.learning_rate_at(epoch)
        loss_ct: EncryptedVector | None = None
        for k, rows in enumerate(epoch_batches(n, cfg.batch_size, cfg.seed, epoch)):
            bch = ech.sub(k)
            b = rows.size
            u = w.dot(xint[rows].T)  # [[X w]] at scale 2
            if not is_lead:
                bch.send(lead, "u", u.to_wire())
                d4 = _recv_vector(bch, lead, "d4", pk, b)
            else:
                assert sk_lead is not None  # for mypy: the lead host made it above
                for other in others:
                    u = u + _recv_vector(bch, other, "u", pk, b)
                r = random_mask(b, r_bits)
                bch.send(guest, "v", (u + pk.encrypt_ints(r)).to_wire())
                bch.send(guest, "r", pk_lead.encrypt_ints(r).to_wire())
                d_masked = _recv_vector(bch, guest, "d", pk, b)
                d4 = d_masked - r
                if others:
                    bch.broadcast("d4", d4.to_wire(), to=others)
                corr = _recv_vector(bch, guest, "corr", sk_lead.public_key, None)
                bch.send(guest, "corr_plain", _decrypt(sk_lead, corr, guest))
                if cfg.convergence == "loss":
                    term = d_masked.dot(_column(-2 * r)) + int(sum(v * v for v in r))
                    loss_ct = term if loss_ct is None else loss_ct + term
            w = _host_update(bch, guest, pk, w, d4, xint[rows], lr, cfg)
        stop = False
        if cfg.convergence == "loss":
            if is_lead:
                assert loss_ct is not None  # every epoch has at least one batch
                ech.send(guest, "loss", loss_ct.rerandomize().to_wire())
            stop = converged = _recv_flag(ech, guest, "stop")
        progress.update(TASK, epoch + 1, cfg.max_iter)
        if stop:
            break
    weights = _host_reveal(ch.sub("final"), guest, pk, w, cfg)
    return TrainResult(weights, [], epoch + 1, converged)


# -- mode 2: an arbiter holds the key ----------------------------------------------------------
def guest_with_arbiter(
    ch: Channel,
    cfg: HeteroLRConfig,
    xg: FloatArray,
    y: np.ndarray,
    hosts: Sequence[str],
    arbiter: str,
    progress: Progress,
) -> TrainResult:
    f = cfg.frac_bits
    pk = _recv_key(ch, arbiter, cfg)
    data = _GuestData(xg, y, cfg)
    r_bits = 2 * f + VALUE_BITS + cfg.mask_bits
    w = np.zeros(data.m)
    converged = False
    epoch = 0
    for epoch in range(cfg.max_iter):
        ech = ch.sub(f"epoch-{epoch}")
        lr = cfg.learning_rate_at(epoch)
        loss_ct: EncryptedVector | None = None
        for k, rows in enumerate(epoch_batches(data.n, cfg.batch_size, cfg.seed, epoch)):
            bch = ech.sub(k)
            b = rows.size
            u = _recv_vector(bch, hosts[0], "u", pk, b)
            for host in hosts[1:]:
                u = u + _recv_vector(bch, host, "u", pk, b)
            u_g = data.scores(w, rows, cfg)
            d4 = u + (u_g + data.shift_y[rows])  # [[4d]] at scale 2
            bch.broadcast("d4", d4.to_wire(), to=list(hosts))
            grad_bits = _mask_bits(cfg, b, data.x_bits, 2 * f + VALUE_BITS)
            sigma = random_mask(data.m, grad_bits)
            bch.send(arbiter, "grad", (d4.dot(data.xint[rows]) + pk.encrypt_ints(sigma)).to_wire())
            grad4 = _recv_ints(bch, arbiter, "grad_plain", data.m, grad_bits + 2) - sigma
            w = _guest_step(w, grad4, b, lr, cfg)
            if cfg.convergence == "loss":
                # sum U^2 = S - 2 sum R U - sum R^2, with S = sum (U + R)^2 squared by the arbiter under the mask R
                r = random_mask(b, r_bits)
                bch.send(arbiter, "sq", (u + pk.encrypt_ints(r)).to_wire())
                sq = _recv_vector(bch, arbiter, "sq_sum", pk, 1)
                coef = 2 * u_g + 2 * data.shift_y[rows] - 2 * r
                term = sq + u.dot(_column(coef)) + (data.plain_loss(u_g, rows) - int(sum(v * v for v in r)))
                loss_ct = term if loss_ct is None else loss_ct + term
        stop = False
        if cfg.convergence == "loss":
            assert loss_ct is not None  # every epoch has at least one batch
            ech.send(arbiter, "loss", loss_ct.rerandomize().to_wire())
            stop = converged = _recv_flag(ech, arbiter, "stop")
        progress.update(TASK, epoch + 1, cfg.max_iter)
        if stop:
            break
    return TrainResult(w, [], epoch + 1, converged)


def host_with_arbiter(
    ch: Channel, cfg: HeteroLRConfig, xh: FloatArray, guest: str, arbiter: str, progress: Progress
) -> TrainResult:
    pk = _recv_key(ch, arbiter, cfg)
    xint = fixed(xh, cfg.frac_bits)
    n, m = xh.shape
    w = pk.encrypt_ints(np.zeros(m, dtype=np.int64))
    converged = False
    epoch = 0
    for epoch in range(cfg.max_iter):
        ech = ch.sub(f"epoch-{epoch}")
        lr = cfg.learning_rate_at(epoch)
        for k, rows in enumerate(epoch_batches(n, cfg.batch_size, cfg.seed, epoch)):
            bch = ech.sub(k)
            bch.send(guest, "u", w.dot(xint[rows].T).to_wire())
            d4 = _recv_vector(bch, guest, "d4", pk, rows.size)
            w = _host_update(bch, arbiter, pk, w, d4, xint[rows], lr, cfg)
        stop = False
        if cfg.convergence == "loss":
            stop = converged = _recv_flag(ech, arbiter, "stop")
        progress.update(TASK, epoch + 1, cfg.max_iter)
        if stop:
            break
    weights = _host_reveal(ch.sub("final"), arbiter, pk, w, cfg)
    return TrainResult(weights, [], epoch + 1, converged)


def arbiter(
    ch: Channel, cfg: HeteroLRConfig, guest: str, hosts: Sequence[str], n_rows: int, progress: Progress
) -> TrainResult:
    f = cfg.frac_bits
    pk, sk = generate_paillier_keypair(cfg.key_bits, allow_unsafe_key_size=cfg.allow_unsafe_key_size)
    _send_key(ch, [guest, *hosts], pk)
    holder = _KeyHolder(sk, cfg)
    losses: list[float] = []
    converged = False
    epoch = 0
    for epoch in range(cfg.max_iter):
        ech = ch.sub(f"epoch-{epoch}")
        for k, _rows in enumerate(epoch_batches(n_rows, cfg.batch_size, cfg.seed, epoch)):
            bch = ech.sub(k)
            holder.open(bch, guest, "grad")
            if cfg.convergence == "loss":
                masked = _decrypt(sk, _recv_vector(bch, guest, "sq", pk, _rows.size), guest)
                bch.send(guest, "sq_sum", sk.encrypt_ints([int(sum(v * v for v in masked))]).to_wire())
            for host in hosts:
                holder.refresh(bch, host)
        stop = False
        if cfg.convergence == "loss":
            total = int(_decrypt(sk, _recv_vector(ech, guest, "loss", pk, 1), guest)[0])
            losses.append(total / (8 * n_rows * (1 << 4 * f)))
            stop = converged = _converged(losses, cfg)
            ech.broadcast("stop", stop, to=[guest, *hosts])
        progress.update(TASK, epoch + 1, cfg.max_iter)
        if stop:
            break
    final = ch.sub("final")
    for host in hosts:
        holder.open(final, host, "w")
    return TrainResult(np.zeros(0), losses, epoch + 1, converged)
