from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.test.utils import override_settings

from accounts.roles import Role
from config.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True)]

ORIGIN = (b"origin", b"http://localhost")
T = TypeVar("T")


def session_cookie(user: User) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (
        b"cookie",
        f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode(),
    )


async def connect(headers: list[tuple[bytes, bytes]]) -> tuple[WebsocketCommunicator, bool, int | str | None]:
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def test_it_refuses_an_unauthenticated_socket() -> None:
    _communicator, connected, code = await connect([ORIGIN])
    assert not connected
    assert code == 4401


async def test_it_rejects_cross_origin_socket(make_user: Callable[..., User]) -> None:
    user = await _sync(make_user, "emp")
    cookie = await _sync(session_cookie, user)
    _communicator, connected, _ = await connect([(b"origin", b"http://evil.example"), cookie])
    assert not connected


async def test_it_refuses_a_role_that_may_not_ask(make_user: Callable[..., User]) -> None:
    user = await _sync(make_user, "aud", Role.AUDITOR)
    _communicator, connected, code = await connect([ORIGIN, await _sync(session_cookie, user)])
    assert not connected
    assert code == 4403


async def test_it_accepts_an_employee_and_survives_malformed_json(make_user: Callable[..., User]) -> None:
    user = await _sync(make_user, "emp")
    communicator, connected, _ = await connect([ORIGIN, await _sync(session_cookie, user)])
    assert connected
    await communicator.send_to(text_data="{not json")
    reply = json.loads(await communicator.receive_from(timeout=5))
    assert reply == {"type": "error", "code": "bad_request", "message": "The message is not valid JSON."}
    await communicator.send_to(text_data=json.dumps({"no": "type"}))
    assert json.loads(await communicator.receive_from(timeout=5))["code"] == "bad_request"
    await communicator.disconnect()


async def test_it_rejects_an_oversized_message(make_user: Callable[..., User]) -> None:
    user = await _sync(make_user, "emp")
    communicator, connected, _ = await connect([ORIGIN, await _sync(session_cookie, user)])
    assert connected
    await communicator.send_to(text_data="x" * (settings.WS_MAX_MESSAGE_BYTES + 1))
    assert json.loads(await communicator.receive_from(timeout=5))["code"] == "too_long"
    await communicator.disconnect()


async def test_it_closes_the_socket_once_the_role_is_revoked(make_user: Callable[..., User]) -> None:
    user = await _sync(make_user, "emp")
    cookie = await _sync(session_cookie, user)
    with override_settings(CHAT_PERMISSION_RECHECK_SECONDS=3600):
        communicator, connected, _ = await connect([ORIGIN, cookie])
        assert connected
        await _sync(user.groups.clear)
        await communicator.send_to(text_data=json.dumps({"type": "stop"}))
        # Within the re-check window the socket still works on its last answer...
        assert await communicator.receive_nothing(timeout=0.5)
    with override_settings(CHAT_PERMISSION_RECHECK_SECONDS=0):
        await communicator.send_to(text_data=json.dumps({"type": "stop"}))
        # ...and the next read of the database ends it.
        reply = json.loads(await communicator.receive_from(timeout=5))
        assert reply["code"] == "forbidden"
        assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    await communicator.disconnect()


async def _sync(func: Callable[..., T], *args: object) -> T:
    return await sync_to_async(func, thread_sensitive=True)(*args)


async def test_an_unknown_socket_path_is_closed_not_a_server_error() -> None:
    communicator = WebsocketCommunicator(application, "/ws/nowhere/", headers=[ORIGIN])
    connected, code = await communicator.connect(timeout=5)
    assert not connected and code == 4404


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (b"http://localhost:8000", True),
        (b"http://localhost:9999", False),  # another port on the same host
        (b"https://localhost:8000", False),  # another scheme
        (b"http://evil.example:8000", False),
    ],
)
async def test_it_checks_the_origin_scheme_and_port_against_the_host(
    make_user: Callable[..., User], origin: bytes, accepted: bool
) -> None:
    user = await _sync(make_user, "emp")
    cookie = await _sync(session_cookie, user)
    communicator, connected, _ = await connect([(b"host", b"localhost:8000"), (b"origin", origin), cookie])
    assert connected is accepted
    await communicator.disconnect()


async def test_a_trusted_origin_from_settings_may_connect_through_a_tls_proxy(
    make_user: Callable[..., User],
) -> None:
    user = await _sync(make_user, "emp")
    cookie = await _sync(session_cookie, user)
    headers = [(b"host", b"localhost:8000"), (b"origin", b"https://localhost"), cookie]
    with override_settings(CSRF_TRUSTED_ORIGINS=["https://localhost"]):
        communicator, connected, _ = await connect(headers)
    assert connected
    await communicator.disconnect()


@pytest.mark.parametrize("action", ["logout", "password change"])
async def test_it_closes_the_socket_after_logout_or_a_password_change(
    make_user: Callable[..., User], action: str
) -> None:
    user = await _sync(make_user, "emp")
    client = Client()
    await _sync(client.force_login, user)
    cookie = (
        b"cookie",
        f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode(),
    )
    with override_settings(CHAT_PERMISSION_RECHECK_SECONDS=0):
        communicator, connected, _ = await connect([ORIGIN, cookie])
        assert connected
        await communicator.send_to(text_data=json.dumps({"type": "stop"}))
        assert await communicator.receive_nothing(timeout=0.3)  # still signed in: nothing to say
        if action == "logout":
            await _sync(client.logout)
        else:
            await _sync(_change_password, user)
        await communicator.send_to(text_data=json.dumps({"type": "stop"}))
        assert json.loads(await communicator.receive_from(timeout=5))["code"] == "forbidden"
        assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    await communicator.disconnect()


def _change_password(user: User) -> None:
    user.set_password("a-new-password-123")
    user.save()


async def test_it_closes_the_socket_of_an_oidc_session_whose_recheck_is_due(
    make_user: Callable[..., User],
) -> None:
    """The provider re-check happens on page loads only; a socket kept open by a script must not
    outlive it (the user may have been disabled at the provider meanwhile)."""
    user = await _sync(make_user, "emp")
    client = Client()
    await _sync(client.force_login, user)
    cookie = (
        b"cookie",
        f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode(),
    )

    def recheck_due_in(seconds: float) -> None:
        session = client.session
        session["oidc_id_token_expiration"] = time.time() + seconds
        session.save()

    await _sync(recheck_due_in, 900)
    with override_settings(CHAT_PERMISSION_RECHECK_SECONDS=0, AUTH_OIDC=True):
        communicator, connected, _ = await connect([ORIGIN, cookie])
        assert connected
        await communicator.send_to(text_data=json.dumps({"type": "stop"}))
        assert await communicator.receive_nothing(timeout=0.3)
        await _sync(recheck_due_in, -1)
        await communicator.send_to(text_data=json.dumps({"type": "stop"}))
        assert json.loads(await communicator.receive_from(timeout=5))["code"] == "forbidden"
        # "Signed out" (4401): the page goes through the sign-in page, whose load re-checks.
        assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await communicator.disconnect()
