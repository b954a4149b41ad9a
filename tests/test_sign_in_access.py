"""What a directory group grants, end to end: a document restricted to a group is invisible to a
user outside it (retrieval, the document view, the chat answer's citations) and visible once the
directory grants the group and the user signs in again; an open chat socket loses a role taken
away in the directory at its next permission re-check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.test import Client
from django.test.utils import override_settings

from config.asgi import application
from rag.models import Document
from rag.selectors import retrieve
from rag.services import document_set_access
from tests.directory_servers import OIDCProvider
from tests.rag_helpers import ingest_bytes
from tests.test_chat import ask, backends, fake, fake_backend, until
from tests.test_sign_in_oidc import Person, oidc_on, person, sign_in

pytestmark = [pytest.mark.django_db(transaction=True)]
__all__ = ["oidc_on"]  # the fixture

BONUS = b"# Bonus scheme\n\nThe annual bonus pool is set at 8 percent of salary and paid in March.\n"
QUESTION = "How large is the annual bonus pool?"
ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture
def restricted(oidc_on: OIDCProvider) -> Iterator[Document]:
    cache.clear()
    document = ingest_bytes(BONUS, "bonus-scheme.md")
    admin = User.objects.create_user(username="admin-x", password="unused-pw-12345")
    document_set_access(document=document, groups=[Group.objects.create(name="hr")], changed_by=admin)
    yield document


def socket_headers(client: Client) -> list[tuple[bytes, bytes]]:
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    return [ORIGIN, (b"cookie", cookie.encode())]


async def cited_sources(client: Client) -> set[str]:
    """Ask over the real chat socket; the titles of the documents the answer cites or consulted."""
    async with fake(text="The bonus pool is 8 percent of salary [1].") as server:
        async with backends(fake_backend(server.http.url + "/v1")):
            communicator = WebsocketCommunicator(application, "/ws/chat/", headers=socket_headers(client))
            connected, _ = await communicator.connect(timeout=5)
            assert connected
            await ask(communicator, QUESTION)
            messages = await until(communicator, "done")
            await communicator.disconnect()
    items: list[dict[str, Any]] = next(m["items"] for m in messages if m["type"] == "citations")
    return {item["title"] for item in items}


def user_of(who: Person) -> User:
    return User.objects.get(directory_account__subject=who.sub)


async def test_a_restricted_document_follows_the_directory_group(
    oidc_on: OIDCProvider, restricted: Document
) -> None:
    who = await sync_to_async(person)(oidc_on, ["Staff"])
    client, _ = await sync_to_async(sign_in)(who)
    user = await sync_to_async(user_of)(who)
    sources = sync_to_async(lambda: {c.source_path for c in retrieve(query=QUESTION, user=user, k=5)})
    assert "bonus-scheme.md" not in await sources()
    assert (await sync_to_async(client.get)(f"/documents/{restricted.pk}/")).status_code == 404
    assert "Bonus scheme" not in await cited_sources(client)

    await sync_to_async(oidc_on.user_put)(
        who.username, password=who.password, groups=["Staff", "HR Managers"]
    )
    client, _ = await sync_to_async(sign_in)(who)
    assert "bonus-scheme.md" in await sources()
    assert (await sync_to_async(client.get)(f"/documents/{restricted.pk}/")).status_code == 200
    assert "Bonus scheme" in await cited_sources(client)


async def test_an_open_socket_loses_a_role_removed_in_the_directory(oidc_on: OIDCProvider) -> None:
    who = await sync_to_async(person)(oidc_on, ["Staff"])
    client, _ = await sync_to_async(sign_in)(who)
    with override_settings(CHAT_PERMISSION_RECHECK_SECONDS=0):
        communicator = WebsocketCommunicator(application, "/ws/chat/", headers=socket_headers(client))
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        await communicator.send_to(text_data=json.dumps({"type": "stop"}))
        assert await communicator.receive_nothing(timeout=0.3), "still an employee"
        # Removed from Staff in the directory; a sign-in elsewhere (another browser) re-syncs.
        await sync_to_async(oidc_on.user_put)(who.username, password=who.password, groups=[])
        _, refused = await sync_to_async(sign_in)(who)
        assert refused["Location"].endswith("sso=failed")
        await communicator.send_to(text_data=json.dumps({"type": "stop"}))
        assert json.loads(await communicator.receive_from(timeout=5))["code"] == "forbidden"
        assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
        await communicator.disconnect()
