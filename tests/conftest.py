from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from accounts.roles import Role
from accounts.services import user_create
from rag.index import index_models_forget
from tests.directory_servers import OIDCProvider, Slapd
from tests.live_server import LiveDaphne
from tests.llm_servers import LocalLLMProcess

SHARED_DIR = Path(__file__).resolve().parent.parent.parent / "shared"


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(username: str, role: Role | None = Role.EMPLOYEE) -> User:
        if role is None:
            return User.objects.create_user(username=username, password="not-used-pw-123")
        return user_create(username=username, role=role, password="not-used-pw-123", validate=False)

    return make


@pytest.fixture(autouse=True)
def forget_index_models() -> Iterator[None]:
    """Each test's database starts empty: no process may keep an earlier test's index model."""
    yield
    index_models_forget()


@pytest.fixture(scope="session")
def local_llm() -> Iterator[LocalLLMProcess]:
    """The real llama.cpp server with SmolLM2, one per test session (threads = 1)."""
    server = LocalLLMProcess(threads=1)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def slapd() -> Iterator[Slapd]:
    """A fresh OpenLDAP per test (it starts in about 0.1 s), so directory changes do not leak."""
    server = Slapd((Path(__file__).parent / "fixtures" / "directory.ldif").read_text())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_daphne() -> Iterator[LiveDaphne]:
    """The app under Daphne on a real port, in this process (tests/live_server.py)."""
    server = LiveDaphne()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OIDCProvider]:
    """The throwaway OIDC provider, one per test session; tests use usernames of their own."""
    provider = OIDCProvider()
    provider.start()
    yield provider
    provider.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests last: they are the slowest, and their Playwright session must not be open
    while asyncio tests run."""
    items.sort(key=lambda item: "/e2e/" in str(item.fspath))
    # The markers of the fast lane (`make test-fast`: -m "not e2e and not llm").
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
        if "local_llm" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.llm)
