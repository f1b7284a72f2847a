"""The audit ledger: this node's signed log and its replicas of partners' logs; verification."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from jointly.config.job import PARTY_NAME
from jointly.node.api.deps import LedgerVerifier, Reader, ServicesDep
from jointly.node.api.schemas import JOB_ID, LedgerHead, LedgerPage, VerificationReport
from jointly.node.services.base import Json

router = APIRouter(prefix="/ledger", tags=["ledger"])

MAX_PAGE = 500


@router.get("", response_model=LedgerPage, summary="Entries of one party's log (default: this party's)")
def entries(
    services: ServicesDep,
    _: Reader,
    party: Annotated[str | None, Query(pattern=PARTY_NAME.pattern)] = None,
    job_id: Annotated[str | None, Query(pattern=JOB_ID)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Json:
    return services.ledger.entries(party=party, job_id=job_id, offset=offset, limit=limit)


@router.get("/head", response_model=LedgerHead, summary="This party's latest signed tree head")
def head(services: ServicesDep, _: Reader) -> Json:
    return services.ledger.head()


@router.post("/verify", response_model=VerificationReport, summary="Check every log: signatures, proofs, replicas")
def verify(services: ServicesDep, _: LedgerVerifier) -> Json:
    return services.ledger.verify()
