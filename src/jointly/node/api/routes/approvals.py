"""This party's decisions on jobs: which wait for it, approve, reject."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from jointly.node.api.deps import Decider, Reader, ServicesDep
from jointly.node.api.routes.jobs import JobId
from jointly.node.api.schemas import ApproveBody, Job, RejectBody
from jointly.node.services.base import Json, JsonList

router = APIRouter(tags=["approvals"])


@router.get("/approvals", response_model=list[Job], summary="Jobs waiting for this party's decision")
def pending(services: ServicesDep, _: Reader) -> JsonList:
    return services.jobs.pending()


@router.post("/jobs/{job_id}/approve", response_model=Job, summary="Approve a job for this party")
def approve(
    job_id: JobId, services: ServicesDep, principal: Decider, body: Annotated[ApproveBody | None, Body()] = None
) -> Json:
    return services.jobs.approve(job_id, by=principal, reason=body.reason if body else "")


@router.post("/jobs/{job_id}/reject", response_model=Job, summary="Reject a job for this party (says why)")
def reject(job_id: JobId, body: RejectBody, services: ServicesDep, principal: Decider) -> Json:
    return services.jobs.reject(job_id, by=principal, reason=body.reason)
