"""The admin page's live feed: /ws/documents/ relays ingestion progress to policy admins only."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from accounts.roles import Role
from config.asgi import application
from tests.rag_helpers import DEMO_CORPUS, ingest_bytes
from tests.test_websocket_auth import ORIGIN, session_cookie

pytestmark = [pytest.mark.django_db(transaction=True)]


async def _socket(user: User) -> tuple[WebsocketCommunicator, bool, int | str | None]:
    cookie = await sync_to_async(session_cookie)(user)
    communicator = WebsocketCommunicator(application, "/ws/documents/", headers=[ORIGIN, cookie])
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def test_an_admin_sees_each_stage_and_the_final_count_live(make_user: Callable[..., User]) -> None:
    admin = await sync_to_async(make_user)("pam", Role.POLICY_ADMIN)
    communicator, connected, _ = await _socket(admin)
    assert connected
    document = await sync_to_async(ingest_bytes)(
        (DEMO_CORPUS / "leave-policy.md").read_bytes(), "leave-policy.md"
    )
    events = [json.loads(await communicator.receive_from(timeout=10))]
    while events[-1]["status"] not in ("ready", "failed"):
        events.append(json.loads(await communicator.receive_from(timeout=10)))
    await communicator.disconnect()
    assert {e["document_id"] for e in events} == {document.pk}
    stages = [e["stage"] for e in events]
    assert stages.index("parsing") < stages.index("embedding") and events[-1]["status"] == "ready"
    chunks = await sync_to_async(document.chunks.count)()
    assert events[-1]["done"] == events[-1]["total"] == chunks > 0


async def test_an_employee_cannot_listen_to_ingestion_progress(make_user: Callable[..., User]) -> None:
    employee = await sync_to_async(make_user)("emp")
    _, connected, code = await _socket(employee)
    assert not connected and code == 4403
