"""The chat page: history, rename, delete, Vietnamese UI, and the CSP that keeps scripts out."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.roles import Role
from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db
PO_FILE = Path(__file__).resolve().parent.parent / "locale" / "vi" / "LC_MESSAGES" / "django.po"


@pytest.fixture
def employee_client(client: Client, make_user: Callable[..., User]) -> Client:
    make_user("emp")
    client.login(username="emp", password="not-used-pw-123")
    return client


def _conversation(username: str = "emp") -> Conversation:
    conversation = Conversation.objects.create(
        user=User.objects.get(username=username), title="Leave for <PERSON_1>"
    )
    Message.objects.create(conversation=conversation, role="user", text="How much leave does <PERSON_1> get?")
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        text="Twenty days [1].",
        html='<p>Twenty days <a class="cite" data-n="1" href="/documents/1/?chunk=1">[1]</a>.</p>',
        citations=[
            {"n": 1, "title": "Leave policy", "heading": "Annual leave", "url": "/documents/1/?chunk=1"}
        ],
        verified=True,
    )
    return conversation


def test_the_page_lists_conversations_and_shows_one_with_its_sources(employee_client: Client) -> None:
    conversation = _conversation()
    page = employee_client.get("/chat/", {"c": str(conversation.id)}).content.decode()
    assert "Leave for &lt;PERSON_1&gt;" in page
    assert "How much leave does &lt;PERSON_1&gt; get?" in page
    assert "[1] Leave policy — Annual leave" in page


def test_a_user_cannot_open_rename_or_delete_another_users_conversation(
    employee_client: Client, make_user: Callable[..., User]
) -> None:
    make_user("other")
    theirs = _conversation("other")
    assert employee_client.get("/chat/", {"c": str(theirs.id)}).status_code == 404
    assert employee_client.post(f"/chat/{theirs.id}/rename/", {"title": "mine now"}).status_code == 404
    employee_client.post(f"/chat/{theirs.id}/delete/")
    theirs.refresh_from_db()
    assert theirs.title == "Leave for <PERSON_1>"


def test_rename_redacts_the_title_and_delete_removes_the_conversation(employee_client: Client) -> None:
    conversation = _conversation()
    employee_client.post(f"/chat/{conversation.id}/rename/", {"title": "Leave for Maria Gonzalez"})
    conversation.refresh_from_db()
    assert conversation.title == "Leave for <PERSON_1>" or "Maria" not in conversation.title
    employee_client.post(f"/chat/{conversation.id}/delete/")
    assert not Conversation.objects.filter(id=conversation.id).exists()
    assert not Message.objects.filter(conversation_id=conversation.id).exists()


def test_the_page_loads_its_script_as_a_module_and_the_csp_forbids_inline_scripts(
    employee_client: Client,
) -> None:
    response = employee_client.get("/chat/")
    page = response.content.decode()
    assert re.search(r'<script type="module" src="/static/js/chat\.[^"]*js"', page)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "no inline script"
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]


def test_the_ui_switches_to_vietnamese(employee_client: Client) -> None:
    employee_client.post("/i18n/setlang/", {"language": "vi", "next": "/chat/"})
    page = employee_client.get("/chat/").content.decode()
    assert "Hỏi về chính sách công ty" in page and "Cuộc trò chuyện mới" in page
    assert 'lang="vi"' in page


def test_every_ui_string_has_a_vietnamese_translation() -> None:
    text = PO_FILE.read_text(encoding="utf-8")
    entries = re.findall(r'\nmsgid "(.*?)"\n(?:msgid_plural ".*?"\n)?msgstr(?:\[0\])? "(.*?)"\n', text)
    assert len(entries) > 100
    missing = [msgid for msgid, msgstr in entries if msgid and not msgstr]
    assert missing == []
    # msgfmt leaves fuzzy entries (makemessages' guesses from a similar string) out of the .mo.
    assert "#, fuzzy" not in text
    assert PO_FILE.with_suffix(".mo").stat().st_mtime >= PO_FILE.stat().st_mtime - 5


def test_auditors_cannot_open_the_chat(client: Client, make_user: Callable[..., User]) -> None:
    make_user("x", Role.AUDITOR)
    client.login(username="x", password="not-used-pw-123")
    assert client.get("/chat/").status_code == 403


def test_a_stored_unverified_answer_says_part_of_it_is_not_backed_by_the_policy(
    employee_client: Client,
) -> None:
    conversation = _conversation()
    Message.objects.filter(conversation=conversation, role="assistant").update(verified=False)
    page = employee_client.get("/chat/", {"c": str(conversation.id)}).content.decode()
    assert "Unverified: part of this answer is not backed by the policy text it cites." in page
    assert "cites no policy passage" not in page
