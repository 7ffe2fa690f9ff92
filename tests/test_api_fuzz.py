"""Property-based fuzzing of the whole HTTP API from its own OpenAPI schema: never a 5xx.

schemathesis generates requests for every operation (valid and invalid bodies, odd path and
query values) and sends them with a valid token of each role (operator, approver, admin, and a
village agent's), so approval, the agent routes and the receipt route are all reached; bad input
must be a 4xx, never a crash.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from broadcaster.config import load_config
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from broadcaster.web.app import create_app
from broadcaster.web.auth import create_token
from tests.conftest import ROOT, local

NOW = local(2026, 11, 28, 14, 0)

# schemathesis needs the schema when the module is collected (its pytest fixture loader does not
# work with pytest 9), so the service is built here on a private copy of the configuration.
_BASE = Path(tempfile.mkdtemp(prefix="broadcaster-fuzz-"))
shutil.copytree(ROOT / "config", _BASE / "config")
shutil.copytree(ROOT / "audio", _BASE / "audio")
_SVC = Service(load_config(_BASE / "config" / "broadcaster.yaml"), clock=FakeClock(NOW))
_TOKENS = {role: create_token(_SVC.ledger, f"fuzz-{role}", role, NOW, "nancun-dir" if role == "agent" else None)
           for role in ("operator", "approver", "admin", "agent")}
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_SVC))


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    _SVC.close()
    shutil.rmtree(_BASE, ignore_errors=True)


@pytest.mark.parametrize("role", sorted(_TOKENS))
@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case, role: str) -> None:
    headers = {"Authorization": f"Bearer {_TOKENS[role]}"}
    if case.operation.path == "/api/agent/v1/commands":
        # A long poll holds up to `wait` (default 30 s): keep the run short, fuzz the rest.
        case.query = dict(case.query or {})
        try:
            wait = float(case.query.get("wait", 30))
        except (TypeError, ValueError):
            wait = -1.0  # not a number: sent as generated, a 422
        if 0.2 < wait:
            case.query["wait"] = 0.2
    case.call_and_validate(headers=headers, checks=[not_a_server_error])
