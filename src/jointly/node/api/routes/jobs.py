"""Joint jobs this node takes part in: propose, list, inspect, cancel, read logs and results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from jointly.node.api.deps import Canceller, Proposer, Reader, ServicesDep
from jointly.node.api.schemas import JOB_ID, JOB_STATE, Event, Job, JobList, JobProposal, JobResults
from jointly.node.services.base import Json, JsonList

router = APIRouter(prefix="/jobs", tags=["jobs"])

JobId = Annotated[str, Path(pattern=JOB_ID, description="The job's id.")]
MAX_PAGE = 500


@router.get("", response_model=JobList, summary="Jobs, newest first")
def list_jobs(
    services: ServicesDep,
    _: Reader,
    state: Annotated[str | None, Query(pattern=JOB_STATE, description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Json:
    return services.jobs.list(state=state, limit=limit, offset=offset)


@router.post(
    "",
    response_model=Job,
    summary="Propose a job to every party of its spec (400 if the spec is malformed or names an unknown dataset)",
)
def propose_job(body: JobProposal, services: ServicesDep, principal: Proposer) -> Json:
    return services.jobs.propose(body.spec, by=principal)


@router.get("/{job_id}", response_model=Job, summary="One job: spec, usage of this party's data, approvals, timeline")
def get_job(job_id: JobId, services: ServicesDep, _: Reader) -> Json:
    return services.jobs.get(job_id)


@router.post("/{job_id}/cancel", response_model=Job, summary="Cancel a pending or running job")
def cancel_job(job_id: JobId, services: ServicesDep, principal: Canceller) -> Json:
    return services.jobs.cancel(job_id, by=principal)


@router.get("/{job_id}/logs", response_model=list[Event], summary="The job's events on this node")
def job_logs(job_id: JobId, services: ServicesDep, _: Reader) -> JsonList:
    return services.jobs.logs(job_id)


@router.get("/{job_id}/results", response_model=JobResults, summary="This party's result and metrics (404 if none)")
def job_results(job_id: JobId, services: ServicesDep, _: Reader) -> Json:
    return services.jobs.results(job_id)
