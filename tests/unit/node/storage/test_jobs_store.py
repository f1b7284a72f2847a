"""SqlJobStore: the node's job records in its database, with live progress kept in memory."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from jointly.errors import ConfigError, NotFound
from jointly.node.records import JobError
from jointly.node.storage import Storage

from .conftest import job


def test_add_get_and_duplicate(storage: Storage) -> None:
    assert storage.jobs.add(job("j1"))
    assert storage.jobs.job_dir("j1").is_dir()
    assert storage.jobs.job_dir("j1") == storage.jobs.root / "j1"
    got = storage.jobs.get("j1")
    assert got is not None
    assert (got.job_id, got.state, got.initiator, got.party) == ("j1", "pending", "a", "a")
    assert (got.name, got.kind) == ("name-j1", "psi")  # taken from the spec
    assert got.spec == job("j1").spec
    assert not storage.jobs.add(job("j1"))
    assert storage.jobs.get("nope") is None


def test_add_refuses_an_id_whose_directory_exists(storage: Storage) -> None:
    storage.jobs.job_dir("old").mkdir(parents=True)
    assert not storage.jobs.add(job("old"))
    assert storage.jobs.get("old") is None


def test_list_newest_first_with_state_filter_limit_offset_and_count(storage: Storage) -> None:
    for i in range(6):
        storage.jobs.add(job(f"j{i}", state="running" if i % 2 else "pending", created=1000.0 + i))
    assert [r.job_id for r in storage.jobs.list()] == ["j5", "j4", "j3", "j2", "j1", "j0"]
    assert [r.job_id for r in storage.jobs.list(state="running")] == ["j5", "j3", "j1"]
    assert [r.job_id for r in storage.jobs.list(limit=2, offset=1)] == ["j4", "j3"]
    assert storage.jobs.list(state="failed") == []
    assert storage.jobs.count() == 6
    assert storage.jobs.count(state="pending") == 3
    assert [r.job_id for r in storage.jobs.all()] == ["j0", "j1", "j2", "j3", "j4", "j5"]
    assert storage.jobs.states() == {"pending": 3, "running": 3}
    with pytest.raises(ConfigError):
        storage.jobs.list(limit=-1)


def test_update_fields_error_and_result(storage: Storage) -> None:
    storage.jobs.add(job("j1"))
    storage.jobs.update(
        "j1",
        state="failed",
        stage="psi",
        error=JobError("b", "psi/round1", "boom"),
        result={"auc": 0.8, "rows": [1, 2]},
        finished=2000.5,
        bytes_sent=10**12,
        started=1500.0,
        expires_at=3000.0,
    )
    got = storage.jobs.get("j1")
    assert got is not None
    assert got.state == "failed" and got.stage == "psi"
    assert got.error == JobError("b", "psi/round1", "boom")
    assert got.result == {"auc": 0.8, "rows": [1, 2]}
    assert (got.finished, got.bytes_sent, got.started, got.expires_at) == (2000.5, 10**12, 1500.0, 3000.0)
    storage.jobs.update("j1", error=None)
    cleared = storage.jobs.get("j1")
    assert cleared is not None and cleared.error is None


def test_update_unknown_job_or_field(storage: Storage) -> None:
    with pytest.raises(NotFound):
        storage.jobs.update("nope", state="running")
    storage.jobs.add(job("j1"))
    with pytest.raises(ConfigError, match="no field 'colour'"):
        storage.jobs.update("j1", colour="red")
    with pytest.raises(ConfigError):
        storage.jobs.update("j1", error="not a JobError")


def test_get_returns_a_snapshot(storage: Storage) -> None:
    storage.jobs.add(job("j1"))
    got = storage.jobs.get("j1")
    assert got is not None
    got.state = "succeeded"
    got.progress["x"] = [1, 1]
    again = storage.jobs.get("j1")
    assert again is not None and again.state == "pending" and again.progress == {}


def _stored_progress(storage: Storage, job_id: str) -> tuple[str, str]:
    with storage.db.read() as s:
        row = s.execute(text("SELECT stage, progress FROM jobs WHERE job_id = :j"), {"j": job_id}).one()
    progress = row[1] if isinstance(row[1], str) else json.dumps(row[1])  # PostgreSQL's JSON comes back parsed
    return str(row[0]), progress


def test_live_progress_is_visible_at_once_and_written_with_the_next_update(storage: Storage) -> None:
    storage.jobs.add(job("j1", state="running"))
    storage.jobs.set_progress("j1", "encrypt", 3, 10)
    storage.jobs.set_stage("j1", "psi/encrypt")
    got = storage.jobs.get("j1")
    assert got is not None and got.progress == {"encrypt": [3, 10]} and got.stage == "psi/encrypt"
    view = storage.jobs.view("j1", include_result=False)
    assert view is not None and view["progress"] == {"encrypt": [3, 10]}
    assert _stored_progress(storage, "j1") == ("", "{}")  # not written yet
    storage.jobs.update("j1", bytes_sent=5)
    stage, progress = _stored_progress(storage, "j1")
    assert stage == "psi/encrypt" and '"encrypt": [3, 10]' in progress
    storage.jobs.set_progress("j1", "match", 1, 2)
    storage.jobs.update("j1", stage="psi/done")  # an explicit change wins over the live stage
    got = storage.jobs.get("j1")
    assert got is not None and got.stage == "psi/done" and got.progress == {"encrypt": [3, 10], "match": [1, 2]}


def test_flush_writes_live_values_and_ignores_unknown_jobs(storage: Storage) -> None:
    storage.jobs.add(job("j1", state="running"))
    storage.jobs.set_stage("j1", "train")
    storage.jobs.set_progress("ghost", "t", 1, 1)
    storage.jobs.flush()
    assert _stored_progress(storage, "j1")[0] == "train"
    assert storage.jobs.get("ghost") is None


def test_view_hides_result_unless_asked(storage: Storage) -> None:
    storage.jobs.add(job("j1"))
    storage.jobs.update("j1", result={"secret": 1}, output_dir="/x")
    hidden = storage.jobs.view("j1", include_result=False)
    shown = storage.jobs.view("j1", include_result=True)
    assert hidden is not None and hidden["result"] is None and hidden["output_dir"] == ""
    assert shown is not None and shown["result"] == {"secret": 1}
    assert storage.jobs.view("nope", include_result=True) is None


def test_fail_interrupted_after_a_restart(tmp_path: Path) -> None:
    st = Storage.open(tmp_path)
    states = {"p": "pending", "a": "approved", "r": "running", "s": "succeeded", "c": "cancelled"}
    for i, (job_id, state) in enumerate(states.items()):
        st.jobs.add(job(job_id, state=state, created=1000.0 + i))
    st.jobs.update("r", stage="train/tree3")
    st.jobs.set_stage("r", "train/tree4")  # lost with the crash below: never flushed
    st.db.close()  # a crash: no Storage.close(), so no flush

    st = Storage.open(tmp_path)
    try:
        assert st.jobs.fail_interrupted("the node restarted") == ["a", "r"]
        running = st.jobs.get("r")
        assert running is not None and running.state == "failed" and running.stage == "train/tree3"
        assert running.error == JobError("a", "train/tree3", "the node restarted")
        assert running.finished is not None
        approved = st.jobs.get("a")
        assert approved is not None and approved.error == JobError("a", "", "the node restarted")
        assert {r.job_id: r.state for r in st.jobs.all()} == {**states, "a": "failed", "r": "failed"}
        assert st.jobs.fail_interrupted("again") == []
        assert st.jobs.count(state="failed") == 2
    finally:
        st.close()


def test_close_flushes_live_progress(tmp_path: Path) -> None:
    st = Storage.open(tmp_path)
    st.jobs.add(job("j1", state="running"))
    st.jobs.set_progress("j1", "t", 7, 9)
    st.close()
    st = Storage.open(tmp_path)
    try:
        got = st.jobs.get("j1")
        assert got is not None and got.progress == {"t": [7, 9]}
    finally:
        st.close()


def test_many_threads_add_update_and_report_progress(storage: Storage) -> None:
    threads_n, per_thread = 8, 15
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(per_thread):
                job_id = f"t{t}-{i}"
                assert storage.jobs.add(job(job_id, state="running", created=float(t * 100 + i)))
                storage.jobs.set_progress(job_id, "step", i, per_thread)
                storage.jobs.set_stage(job_id, f"stage{i}")
                storage.jobs.update(job_id, state="succeeded", bytes_sent=i)
                storage.events.add(job_id, "done", "", f"thread {t}")
                storage.jobs.list(limit=5)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert storage.jobs.count(state="succeeded") == threads_n * per_thread
    sample = storage.jobs.get("t3-7")
    assert sample is not None and sample.stage == "stage7" and sample.progress == {"step": [7, per_thread]}
    assert sample.bytes_sent == 7
    assert len(storage.events.for_job("t3-7")) == 1
