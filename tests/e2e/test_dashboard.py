"""The dashboard in a real browser, against real nodes: a partner's job is approved and followed to its ROC curve.

Two node processes (bank, telco) talk mutual-TLS gRPC; every job waits for
people.  telco proposes a vertical SecureBoost job through its REST API; on
bank's dashboard a person signs in, sees the job pending, reads what it would
use of bank's data, approves it, watches it succeed and opens its ROC curve.
The page must load nothing from anywhere but the node.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest

from jointly.config.federation import init_federation
from jointly.data.bundled import VERTICAL_ID_COLUMN, VERTICAL_LABEL, demo_vertical_tables
from jointly.runtime.launcher import LocalFederation

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTIES = ["bank", "telco"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
TERMINAL = ("succeeded", "failed", "cancelled", "rejected", "expired")
JOB_TIMEOUT_MS = 200_000


def _api(local: LocalFederation, party: str) -> httpx.Client:
    return httpx.Client(
        base_url=local.api_url(party), headers={"Authorization": f"Bearer {local.admin_token(party)}"}, timeout=60
    )


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    tmp = tmp_path_factory.mktemp("dashboard")
    fed = init_federation(PARTIES, tmp / "fed", name="e2e-dashboard")
    tables = demo_vertical_tables(tmp / "data")
    local = LocalFederation(
        fed,
        tmp,
        data_dir=tmp / "data",
        heartbeat_interval=0.5,
        peer_dead_after=5.0,
        workers=1,
        auto_approve=(),  # every job waits for people
    )
    local.start()
    try:
        for party, name, table in (("bank", "patients", "hospital"), ("telco", "lab_results", "lab")):
            with _api(local, party) as api:
                reply = api.post(
                    "/api/datasets", json={"name": name, "path": tables[table].name, "id_column": VERTICAL_ID_COLUMN}
                )
                assert reply.is_success, reply.text
        yield local
    finally:
        local.stop()


def _propose(local: LocalFederation) -> str:
    """telco proposes a small vertical SecureBoost job; bank holds the labels (and so the ROC curve)."""
    spec: dict[str, Any] = {
        "name": "risk-model",
        "kind": "secureboost",
        "parties": {
            # the id columns come from the registered datasets
            "bank": {"dataset": "patients", "label": VERTICAL_LABEL},
            "telco": {"dataset": "lab_results"},
        },
        "secureboost": {"n_trees": 2, "max_depth": 2, "key_bits": 1024, "allow_unsafe_key_size": True},
    }
    with _api(local, "telco") as api:
        reply = api.post("/api/jobs", json={"spec": spec})
    assert reply.is_success, reply.text
    job = reply.json()
    assert job["state"] == "pending"
    return str(job["job_id"])


def _save_screenshot(page: Page, tmp_path: Path) -> Path:
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    artefacts = os.environ.get("JOINTLY_ARTIFACTS")
    if artefacts:
        Path(artefacts).mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, Path(artefacts) / shot.name)
    print(f"dashboard screenshot: {shot}")
    return shot


def test_a_partners_job_is_approved_and_followed_to_its_roc_curve(
    federation: LocalFederation, browser: Browser, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    job_id = _propose(federation)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requested: list[str] = []
    page_errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        page.goto(federation.api_url("bank") + "/")
        expect(page).to_have_url(re.compile(r"/ui/"))

        # an unknown token is refused; bank's admin token signs in
        page.fill("#token", "not-a-token")
        page.click("[data-testid=login-form] button[type=submit]")
        expect(page.get_by_test_id("login-error")).to_contain_text("does not know")
        page.fill("#token", federation.admin_token("bank"))
        page.click("[data-testid=login-form] button[type=submit]")
        expect(page.get_by_test_id("party-name")).to_have_text("bank")
        expect(page.get_by_test_id("user-info")).to_contain_text("admin")

        # the partner's job is listed, pending
        row = page.locator(f"[data-testid=job-row][data-job-id='{job_id}']")
        expect(row.get_by_test_id("job-state")).to_have_text("pending")

        # the registered table: its schema, no rows
        page.get_by_test_id("nav-datasets").click()
        dataset = page.get_by_test_id("dataset-row").filter(has_text="patients")
        expect(dataset).to_contain_text(f"{VERTICAL_LABEL}: int64")

        # Approvals shows what the job would use of bank's data; approve it
        page.get_by_test_id("nav-approvals").click()
        card = page.locator(f"[data-testid=approval-card][data-job-id='{job_id}']")
        expect(card.get_by_test_id("usage")).to_contain_text("patients")
        expect(card.get_by_test_id("usage")).to_contain_text(VERTICAL_LABEL)
        expect(card.get_by_test_id("usage")).to_contain_text("1024")
        card.get_by_test_id("approve-button").click()
        expect(page.get_by_test_id("flash")).to_contain_text("Approved")
        expect(card).to_have_count(0)

        # the job list follows it to its end
        page.get_by_test_id("nav-jobs").click()
        state = row.get_by_test_id("job-state")
        expect(state).to_have_text(re.compile("|".join(TERMINAL)), timeout=JOB_TIMEOUT_MS)
        if state.inner_text() != "succeeded":
            with _api(federation, "bank") as api:
                pytest.fail(f"the job ended {state.inner_text()}: {api.get(f'/api/jobs/{job_id}').json()['error']}")

        # its page: both approvals, and the ROC curve drawn as SVG with the AUC in its title
        row.get_by_role("link").click()
        expect(page.get_by_test_id("job-title")).to_contain_text("risk-model")
        for party in PARTIES:
            approval = page.locator(f"[data-testid=approval-row][data-party={party}]")
            expect(approval).to_contain_text("approved")
        roc = page.get_by_test_id("roc-plot")
        expect(roc.locator("path.line")).to_have_count(1)
        assert roc.evaluate("svg => svg.tagName.toLowerCase()") == "svg"
        assert len(roc.locator("path.line").get_attribute("d") or "") > 10
        expect(roc.locator("title")).to_have_text(re.compile(r"ROC curve \(AUC 0\.\d{3}\)"))
        expect(page.get_by_test_id("history-plot").locator("path.line")).to_have_count(1)
        expect(page.get_by_test_id("metrics-table")).to_contain_text("auc")
        _save_screenshot(page, tmp_path)

        # signing out forgets the token
        page.get_by_test_id("sign-out").click()
        expect(page.get_by_test_id("login-form")).to_be_visible()
        assert page.evaluate("() => sessionStorage.getItem('jointly.token')") is None
    finally:
        context.close()

    outside = [url for url in requested if urlsplit(url).hostname not in LOCAL_HOSTS]
    assert requested and not outside, outside
    assert not page_errors, page_errors
