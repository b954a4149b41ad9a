from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.roles import Role
from accounts.services import user_roles
from audit.models import AuditEvent
from audit.services import pseudonym

pytestmark = pytest.mark.django_db

PAGES = {"chat": "/chat/", "documents": "/documents/", "audit": "/audit/"}
ALLOWED = {
    Role.EMPLOYEE: {"chat"},
    Role.POLICY_ADMIN: {"chat", "documents"},
    Role.AUDITOR: {"audit"},
}


def test_the_three_role_groups_exist_with_permissions() -> None:
    perms = {
        group.name: set(group.permissions.values_list("codename", flat=True))
        for group in Group.objects.filter(name__in=[r.value for r in Role])
    }
    assert perms == {
        "employee": {"ask_questions"},
        "policy_admin": {"ask_questions", "manage_documents"},
        "auditor": {"view_audit"},
    }


@pytest.mark.parametrize("role", list(Role))
def test_each_role_sees_only_its_pages(make_user: Callable[..., User], role: Role) -> None:
    client = Client()
    client.force_login(make_user(f"user-{role.value}", role))
    for name, url in PAGES.items():
        expected = 200 if name in ALLOWED[role] else 403
        assert client.get(url).status_code == expected, (role, url)


def test_an_employee_gets_403_on_the_upload_and_audit_pages(make_user: Callable[..., User]) -> None:
    client = Client()
    client.force_login(make_user("emp"))
    assert client.get("/documents/").status_code == 403
    assert client.get("/audit/").status_code == 403


@pytest.mark.parametrize("url", [*PAGES.values(), "/"])
def test_every_page_sends_anonymous_visitors_to_login(url: str) -> None:
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_login_page_answers_and_logs_in(make_user: Callable[..., User]) -> None:
    make_user("emp")
    client = Client()
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "emp", "password": "not-used-pw-123"})
    assert response.status_code == 302
    assert client.get("/", follow=True).redirect_chain[-1][0] == "/chat/"


def test_a_wrong_password_is_refused(make_user: Callable[..., User]) -> None:
    make_user("emp")
    response = Client().post("/accounts/login/", {"username": "emp", "password": "nope"})
    assert response.status_code == 200
    assert b"did not match" in response.content


def test_pages_carry_a_content_security_policy_without_unsafe_inline() -> None:
    csp = Client().get("/accounts/login/")["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp


def test_django_admin_is_for_staff_only(make_user: Callable[..., User]) -> None:
    client = Client()
    client.force_login(make_user("emp"))
    assert client.get("/admin/").status_code == 302
    staff = make_user("staffer")
    staff.is_staff = True
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200


def test_a_user_without_a_role_is_told_so(make_user: Callable[..., User]) -> None:
    client = Client()
    client.force_login(make_user("nobody", None))
    response = client.get("/")
    assert response.status_code == 403
    assert b"No role assigned" in response.content


def test_create_user_reads_the_password_file(tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("correct-horse-battery-9\n")
    call_command("create_user", "dana", "--role", "auditor", "--password-file", str(password_file))
    user = User.objects.get(username="dana")
    assert user.check_password("correct-horse-battery-9")
    assert user_roles(user=user) == {Role.AUDITOR}


def test_create_user_rejects_a_weak_password(tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("123")
    with pytest.raises(CommandError, match="too short"):
        call_command("create_user", "weak", "--role", "employee", "--password-file", str(password_file))
    assert not User.objects.filter(username="weak").exists()


def test_create_user_without_a_terminal_or_file_fails_clearly() -> None:
    with pytest.raises(CommandError, match="--password-file"):
        call_command("create_user", "x", "--role", "employee")


def test_create_user_rejects_an_unknown_role() -> None:
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("create_user", "x", "--role", "janitor")


def test_healthz_answers_without_login() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.fixture
def throttled(settings: Any) -> Iterator[None]:
    """Login throttling on, with a clean slate in the shared cache."""
    cache.clear()
    settings.AXES_FAILURE_LIMIT = 3
    yield
    cache.clear()


def _login(client: Client, username: str, password: str, address: str = "10.1.2.3") -> int:
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address
    ).status_code


def test_an_account_is_locked_after_repeated_wrong_passwords_even_for_the_right_one(
    make_user: Callable[..., User], throttled: None
) -> None:
    user = make_user("emp")
    client = Client()
    # Each from another address: the account itself is what gets locked.
    assert [_login(client, "emp", "wrong", f"10.0.0.{n}") for n in range(3)] == [200, 200, 429]
    response = client.post(
        "/accounts/login/", {"username": "emp", "password": "not-used-pw-123"}, REMOTE_ADDR="10.9.9.9"
    )
    assert response.status_code == 429 and "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.LOGIN_LOCKOUT)
    assert event.actor == pseudonym(user_id=user.pk) and event.detail == {"known_account": True}


def test_one_address_guessing_many_accounts_is_locked(
    make_user: Callable[..., User], throttled: None
) -> None:
    make_user("emp")
    client = Client()
    assert [_login(client, f"nobody{n}", "guess") for n in range(3)] == [200, 200, 429]
    assert _login(client, "emp", "not-used-pw-123") == 429
    assert _login(client, "emp", "not-used-pw-123", address="10.4.4.4") == 302, "another address may log in"
