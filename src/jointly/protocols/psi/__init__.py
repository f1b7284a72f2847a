"""Private set intersection: which ids do the parties have in common, and who gets to know.

:func:`run_psi` is what callers use: every party calls it with its own channel,
its own ids and the same :class:`PsiConfig`, and it dispatches on
``config.protocol``.  Today there is one protocol, ``"ecdh"``
(:mod:`jointly.protocols.psi.ecdh`, Diffie-Hellman PSI over Curve25519); an
OT-based one (KKRT/RR22) can be added beside it as another module and another
entry of ``PROTOCOLS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from jointly.channel import Channel
from jointly.errors import ConfigError
from jointly.progress import NullProgress, Progress
from jointly.protocols.psi.common import Id, PsiConfig, PsiMode, PsiResult
from jointly.protocols.psi.ecdh import run_ecdh_psi

__all__ = ["PROTOCOLS", "Id", "PsiConfig", "PsiMode", "PsiResult", "run_ecdh_psi", "run_psi"]

PsiProtocol = Callable[..., PsiResult]

#: every PSI protocol by its ``PsiConfig.protocol`` name; each is called as ``fn(channel, ids, config, progress=...)``
PROTOCOLS: dict[str, PsiProtocol] = {"ecdh": run_ecdh_psi}

_NO_PROGRESS = NullProgress()


def run_psi(channel: Channel, ids: Sequence[Id], config: PsiConfig, *, progress: Progress = _NO_PROGRESS) -> PsiResult:
    """Run this party's side of the PSI protocol named by ``config.protocol``."""
    protocol = PROTOCOLS.get(config.protocol)
    if protocol is None:
        raise ConfigError(f"unknown PSI protocol {config.protocol!r} (known: {', '.join(PROTOCOLS)})")
    return protocol(channel, ids, config, progress=progress)
