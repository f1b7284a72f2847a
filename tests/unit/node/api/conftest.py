from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from jointly.node.api import create_api
from tests.unit.node.api.fake_services import TOKENS, FakeServices

ADMIN = {"Authorization": f"Bearer {TOKENS['admin']}"}
ANALYST = {"Authorization": f"Bearer {TOKENS['analyst']}"}
AUDITOR = {"Authorization": f"Bearer {TOKENS['auditor']}"}


@pytest.fixture
def services() -> FakeServices:
    return FakeServices()


@pytest.fixture
def client(services: FakeServices) -> TestClient:
    return TestClient(create_api(services), raise_server_exceptions=False)
