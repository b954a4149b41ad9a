"""What the three roles do, in Debian's Chromium, against the whole running app.

The scenarios share one app and run in file order (scenario 4 kills the first LLM backend,
scenario 6 reads the conversation of scenario 1). Each saves a screenshot to
test-artifacts/e2e/.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.fake_llm import FakeOpenAI
from devserver.embedded import free_port
from tests.conftest import SHARED_DIR
from tests.e2e.conftest import ARTIFACTS, IDP_PASSWORD, IDP_USER, PASSWORD, ROOT, LiveApp, _wait_ready

# The limit covers the module's `live_app` setup in its first test too (migrate, ingest the demo
# corpus, start Daphne, Celery and two model servers): minutes on a busy 2-core machine.
pytestmark = [pytest.mark.timeout(480)]
Page = Any  # playwright.sync_api.Page; imported lazily so collection never needs a browser

QUESTION_WITH_PII = "My name is Maria Gonzalez, phone 0903 123 456. How many days of annual leave do I get?"


@pytest.fixture
def page(browser: Any, live_app: LiveApp) -> Iterator[Page]:
    context = browser.new_context(base_url=live_app.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()


def login(page: Page, username: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("#main form button[type=submit]")
    page.wait_for_load_state()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def ask_and_watch(page: Page, question: str, *, timeout: float = 150) -> list[int]:
    """Send a question; return the streamed answer's length after every DOM change until
    `done` replaces it (recorded in the page by a MutationObserver, so no token is missed)."""
    page.wait_for_selector("#send:not([disabled])", timeout=30_000)
    page.evaluate(
        """() => {
          window.__lengths = [];
          const record = () => {
            const answer = [...document.querySelectorAll('.msg.assistant')].pop();
            const text = answer && answer.querySelector('.answer-text');
            if (text && answer.classList.contains('streaming')) window.__lengths.push(text.textContent.length);
          };
          new MutationObserver(record).observe(document.getElementById('messages'),
            {subtree: true, childList: true, characterData: true});
        }"""
    )
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.wait_for_selector(".msg.assistant.streaming", state="attached", timeout=10_000)
    page.wait_for_selector(".msg.assistant.streaming", state="detached", timeout=timeout * 1000)
    return list(page.evaluate("() => window.__lengths"))


def grew_incrementally(lengths: list[int]) -> bool:
    """Seen part-written, then longer, never shorter. Two lengths prove it as well as ten: a
    short answer from the tiny model (17 characters once) arrives in few frames."""
    distinct = sorted({n for n in lengths if n > 0})
    return len(distinct) >= 2 and lengths == sorted(lengths)


# 1 -------------------------------------------------------------------------------------------
def test_1_an_employee_asks_in_english_and_opens_a_cited_passage(page: Page) -> None:
    login(page, "emma")
    assert page.url.endswith("/chat/")
    lengths = ask_and_watch(page, QUESTION_WITH_PII)
    bubble = page.locator(".msg.assistant").last.inner_text()
    assert grew_incrementally(lengths), f"the answer should grow token by token, saw {lengths[:40]}: {bubble}"
    answer = page.locator(".msg.assistant").last
    assert answer.locator(".answer").inner_text().strip()
    chips = answer.locator(".citations a.chip")
    assert chips.count() >= 1
    shot(page, "1-english-answer")
    titles = [chips.nth(i).inner_text() for i in range(chips.count())]
    assert any("Leave" in t for t in titles), titles
    chips.first.click()
    page.wait_for_selector(".passage.highlighted")
    assert page.locator(".passage.highlighted").is_visible()
    shot(page, "1-cited-passage")


# 2 -------------------------------------------------------------------------------------------
def test_2_the_same_in_vietnamese_with_the_ui_in_vietnamese(page: Page) -> None:
    login(page, "emma")
    page.select_option("#lang-select", "vi")
    page.click(".lang-form button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "vi"
    assert "Hỏi về chính sách công ty" in page.content()
    lengths = ask_and_watch(page, "Nhân viên được nghỉ phép năm bao nhiêu ngày?")
    assert grew_incrementally(lengths), lengths[:40]
    answer = page.locator(".msg.assistant").last
    assert answer.locator(".citations a.chip").count() >= 1
    shot(page, "2-vietnamese-answer")


# 3 -------------------------------------------------------------------------------------------
def test_3_stop_mid_answer_stops_streaming_and_the_ui_is_usable(page: Page) -> None:
    login(page, "emma")
    page.wait_for_selector("#send:not([disabled])", timeout=30_000)
    page.fill(
        "#question", "How do I book flights and hotels under the travel policy? Explain every rule in detail."
    )
    page.press("#question", "Enter")
    answer = page.locator(".msg.assistant").last
    page.wait_for_function(
        "() => { const a = [...document.querySelectorAll('.msg.assistant .answer-text')].pop();"
        " return a && a.textContent.length > 0; }",
        timeout=120_000,
    )
    page.click("#stop")
    assert "streaming" not in (answer.get_attribute("class") or "")
    frozen = answer.locator(".answer-text").inner_text()
    time.sleep(1.5)
    assert answer.locator(".answer-text").inner_text() == frozen, "no more tokens after stop"
    assert answer.locator(".banner.info").count() == 1
    assert page.locator("#send").is_enabled() and page.locator("#stop").is_hidden()
    page.fill("#question", "still usable")
    assert page.input_value("#question") == "still usable"
    shot(page, "3-stopped")


# 4 -------------------------------------------------------------------------------------------
def test_4_the_llm_backend_dies_mid_answer_and_the_answer_still_completes(
    page: Page, live_app: LiveApp
) -> None:
    login(page, "emma")
    page.wait_for_selector("#send:not([disabled])", timeout=30_000)
    page.fill("#question", "What does the remote work policy say about equipment and working hours?")
    page.press("#question", "Enter")
    # Killed at the first visible text: the small model's answers can be a few tokens long.
    page.wait_for_function(
        "() => { const a = [...document.querySelectorAll('.msg.assistant .answer-text')].pop();"
        " return a && a.textContent.length > 0; }",
        timeout=120_000,
        polling=20,
    )
    assert live_app.primary.proc is not None
    live_app.primary.proc.send_signal(signal.SIGKILL)  # the runtime dies while streaming
    answer = page.locator(".msg.assistant").last
    page.wait_for_function("() => !document.querySelector('.msg.assistant.streaming')", timeout=150_000)
    banners = " ".join(answer.locator(".banner").all_inner_texts())
    assert "backup service" in banners or "unavailable" in banners, banners
    assert answer.locator(".answer").inner_text().strip()
    shot(page, "4-backend-killed")


# 5 -------------------------------------------------------------------------------------------
def test_5_an_admin_uploads_a_pdf_and_a_docx_and_a_corrupt_file_fails_clearly(
    page: Page, tmp_path: Path
) -> None:
    corrupt = tmp_path / "broken-policy.pdf"
    corrupt.write_bytes(b"%PDF-1.7\nthis is not really a pdf\n%%EOF")
    login(page, "paul")
    page.goto("/documents/")
    files = [
        str(SHARED_DIR / "corpus" / "files" / "my-form.pdf"),
        str(SHARED_DIR / "corpus" / "files" / "TEMPLATE_Team_charter.docx"),
        str(corrupt),
    ]
    page.set_input_files("#upload-form input[type=file]", files)
    page.click("#upload-form button[type=submit]")
    page.wait_for_load_state()
    for name in ("my-form.pdf", "TEMPLATE_Team_charter.docx"):
        row = page.locator("#documents tr", has_text=name)
        row.locator(".status-ready").wait_for(timeout=120_000)
    failed = page.locator("#documents tr", has_text="broken-policy.pdf")
    failed.locator(".status-failed").wait_for(timeout=60_000)
    assert failed.locator(".failure-reason").inner_text().strip(), "the admin sees why"
    shot(page, "5-uploads")
    # The new content is answerable: a question about the team charter finds it.
    page.goto("/chat/")
    ask_and_watch(page, "What goes into a team charter?")
    chips = page.locator(".msg.assistant").last.locator(".citations a.chip").all_inner_texts()
    assert any("charter" in chip.lower() for chip in chips), chips
    shot(page, "5-new-content-answered")


# 6 -------------------------------------------------------------------------------------------
def test_6_the_auditor_sees_placeholders_never_the_raw_values(page: Page) -> None:
    login(page, "aud")
    assert page.url.endswith("/audit/")
    html = page.content()
    assert "Maria Gonzalez" not in html and "0903 123 456" not in html
    assert "&lt;PERSON_1&gt;" in html and "&lt;PHONE_NUMBER_1&gt;" in html
    assert "Chain valid" in page.locator("#chain-status").inner_text()
    with page.expect_download() as download_info:
        page.click("#export-csv")
    download = download_info.value
    exported = Path(download.path()).read_text(encoding="utf-8")
    assert "<PERSON_1>" in exported and "Maria Gonzalez" not in exported
    shot(page, "6-audit-log")


# 7 -------------------------------------------------------------------------------------------
def test_7_an_employee_is_refused_the_audit_log_and_the_upload_page(page: Page) -> None:
    login(page, "emma")
    for url in ("/audit/", "/documents/"):
        response = page.goto(url)
        assert response is not None and response.status == 403
        assert "Not allowed" in page.content()
    shot(page, "7-refused")


# 8 -------------------------------------------------------------------------------------------
def test_8_html_in_a_document_and_in_an_answer_renders_inert(page: Page, live_app: LiveApp) -> None:
    login(page, "emma")
    # Stall the remaining runtime: the answer becomes the extractive quote of the passage
    # that carries the <script> and <img onerror> text.
    runtimes = [
        llm.proc for llm in (live_app.primary, live_app.secondary) if llm.proc and llm.proc.poll() is None
    ]
    for proc in runtimes:
        proc.send_signal(signal.SIGSTOP)
    try:
        ask_and_watch(page, "What should I do with suspicious attachments from unknown senders?")
    finally:
        for proc in runtimes:
            proc.send_signal(signal.SIGCONT)
    answer = page.locator(".msg.assistant").last
    # The quoted passage shows its markup as text; none of it became an element.
    assert '<script>alert("doc-xss")</script>' in answer.locator(".answer").inner_text()
    assert answer.locator(".answer script, .answer img").count() == 0
    chips = answer.locator(".citations a.chip")
    labels = chips.all_inner_texts()
    shot(page, "8-answer")
    notice = next((i for i, label in enumerate(labels) if "security notice" in label.lower()), None)
    assert notice is not None, labels
    chips.nth(notice).click()
    page.wait_for_selector(".passage.highlighted")
    assert "onerror" in page.locator(".passage.highlighted").inner_text()
    assert page.locator(".passage script, .passage img").count() == 0
    time.sleep(0.5)
    assert page.dialogs == [], page.dialogs
    shot(page, "8-inert-html")


# 9 -------------------------------------------------------------------------------------------
def test_9_the_answer_quotes_its_evidence_and_the_document_highlights_that_sentence(page: Page) -> None:
    login(page, "emma")
    ask_and_watch(page, "How many unused days of annual leave can I carry into the next year?")
    answer = page.locator(".msg.assistant").last
    quote = answer.locator(".answer blockquote").first
    assert quote.is_visible(), answer.inner_text()
    assert "carry up to 5 unused days" in quote.inner_text()
    # The quote looks unlike the model's words: a tinted block with its source as a chip.
    assert quote.evaluate("e => getComputedStyle(e).borderLeftStyle") == "solid"
    assert "Leave" in quote.locator("p").last.inner_text()
    shot(page, "9-evidence-quote")
    quote.locator("a.cite").first.click()
    page.wait_for_selector("mark.evidence")
    marked = page.locator("mark.evidence")
    assert marked.first.is_visible()
    assert "carry up to 5 unused days" in " ".join(marked.all_inner_texts())
    assert "Sick leave does not carry over" not in " ".join(marked.all_inner_texts()), (
        "only the quoted sentences"
    )
    shot(page, "9-highlighted-sentence")


# 10 ------------------------------------------------------------------------------------------
def test_10_an_employee_signs_in_through_the_company_provider_and_asks(page: Page, live_app: LiveApp) -> None:
    page.goto("/accounts/login/")
    page.click("text=Sign in with Example Corp")
    page.wait_for_selector("#idp-username")  # the provider's own sign-in page, on its own port
    assert not page.url.startswith(live_app.url)
    shot(page, "10-provider-page")
    page.fill("#idp-username", IDP_USER)
    page.fill("#idp-password", IDP_PASSWORD)
    page.click("text=Sign in to Example Corp")
    page.wait_for_url(f"{live_app.url}/chat/**")
    ask_and_watch(page, "How many unused days of annual leave can I carry into the next year?")
    answer = page.locator(".msg.assistant").last
    assert "carry up to 5 unused days" in answer.inner_text()
    assert answer.locator(".citations a.chip").count() >= 1
    shot(page, "10-signed-in-with-oidc")
    page.click("text=Log out")  # PolicyDesk, then the provider
    page.wait_for_url(f"{live_app.url}/accounts/login/**")
    page.goto("/chat/")
    assert "/accounts/login/" in page.url


# 11 ------------------------------------------------------------------------------------------
def test_12_an_employee_creates_an_api_key_uses_it_with_the_openai_sdk_and_revokes_it(
    page: Page, live_app: LiveApp
) -> None:
    import openai

    login(page, "emma")
    page.click("nav >> text=API keys")
    page.fill("#create-key input[name=name]", "e2e script")
    page.click("#create-key button[type=submit]")
    secret = page.locator("#new-key-secret").inner_text().strip()
    assert secret.startswith("pd_")
    shot(page, "12-new-key")
    sdk = openai.OpenAI(api_key=secret, base_url=live_app.url + "/v1", max_retries=0, timeout=150)
    completion = sdk.chat.completions.create(
        model="policydesk",
        messages=[
            {
                "role": "user",
                "content": "How many unused days of annual leave can I carry into the next year?",
            }
        ],
        max_tokens=24,
    )
    content = completion.choices[0].message.content or ""
    assert "carry up to 5 unused days" in content and "\n\nSources:\n- [" in content, content
    extension = (completion.choices[0].message.model_extra or {})["policydesk"]
    assert any("Leave" in c["document"] for c in extension["citations"] if c["cited"]), extension

    page.goto("/api-keys/")
    row = page.locator("#keys tr", has_text="e2e script")
    assert secret not in page.content(), "the key is shown once"
    assert row.locator(".key-status").inner_text().strip() == "active"
    row.locator("button", has_text="Revoke").click()
    page.wait_for_load_state()
    assert (
        page.locator("#keys tr", has_text="e2e script").locator(".key-status").inner_text().strip()
        == "revoked"
    )
    shot(page, "12-revoked")
    with pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(
            model="policydesk", messages=[{"role": "user", "content": "Still there?"}]
        )


PER_DIEM_QUESTION = "How much is the per diem per travel day?"


def test_11_a_version_scheduled_for_next_month_answers_from_its_date_and_stays_auditable(
    page: Page, live_app: LiveApp, tmp_path: Path
) -> None:
    assert live_app.clock is not None
    today = date.today()
    takes_effect = (today.replace(day=1) + timedelta(days=32)).replace(day=1)  # the 1st of next month
    # The admin uploads v2 of the travel policy (a new per diem) under another file name, as a
    # new version of the existing document, effective from next month.
    revised = tmp_path / "travel-policy-revised.md"
    original = (ROOT / "demo_corpus" / "travel-policy.md").read_text()
    assert "A per diem of 45 EUR" in original
    revised.write_text(original.replace("A per diem of 45 EUR", "A per diem of 52 EUR"))
    login(page, "paul")
    page.goto("/documents/")
    page.set_input_files("#upload-form input[type=file]", str(revised))
    page.select_option("#version-of", "travel-policy.md")
    page.fill("#effective-from", takes_effect.isoformat())
    page.click("#upload-form button[type=submit]")
    page.wait_for_load_state()
    scheduled = page.locator("#documents tr", has_text=f"takes effect on {takes_effect.isoformat()}")
    scheduled.locator(".status-ready").wait_for(timeout=120_000)
    assert "travel-policy.md" in scheduled.inner_text()
    shot(page, "11-scheduled-version")

    # An employee asks: v1 answers, and one line says a new version takes effect next month.
    page.context.clear_cookies()
    login(page, "emma")
    ask_and_watch(page, PER_DIEM_QUESTION)
    first = page.locator(".msg.assistant").last.inner_text()
    assert "45 EUR" in first and "52 EUR" not in first, first
    assert "A new version takes effect on" in first, first
    shot(page, "11-current-answer-with-scheduled-line")

    # The clock passes the date (no job runs): the same question gets v2.
    live_app.clock.write_text((takes_effect + timedelta(days=1)).isoformat())
    try:
        page.goto("/chat/")  # a new conversation: the first answer is not in the model's history
        ask_and_watch(page, PER_DIEM_QUESTION)
        second = page.locator(".msg.assistant").last.inner_text()
        assert "52 EUR" in second and "45 EUR" not in second, second
        assert "A new version takes effect" not in second
        shot(page, "11-answer-after-the-date")

        # The auditor opens the first answer's cited text: v1, read-only, marked superseded.
        page.context.clear_cookies()
        login(page, "aud")
        page.goto("/audit/?kind=question")
        page.locator("table tbody tr td:first-child a").nth(
            1
        ).click()  # newest first: the first answer is second
        page.wait_for_selector("#cited-passages a")
        page.locator("#cited-passages a").first.click()
        page.wait_for_selector("#cited-text")
        assert "45 EUR" in page.locator("#cited-text").inner_text()
        state = page.locator("#passage-state").inner_text()
        assert f"Superseded on {takes_effect.isoformat()}" in state, state
        shot(page, "11-auditor-sees-superseded-v1")

        # The changes view shows the figure that moved.
        page.context.clear_cookies()
        login(page, "paul")
        page.goto("/documents/")
        page.locator("#documents tr", has_text="travel-policy.md").locator("a.changes-link").first.click()
        page.wait_for_selector("#changes")
        assert "45 \u2192 52 EUR" in page.locator("#changes .figure").all_inner_texts(), page.content()
        shot(page, "11-changes-view")
    finally:
        live_app.clock.write_text("")  # later scenarios see the real today


def moved_figure_answer(messages: list[dict[str, str]]) -> str:
    """A model that restates the carry-over rule with the annual-leave figure (20) in place of
    the policy's 5, then two true sentences, citing the passage it was given them in."""
    prompt = messages[-1]["content"]
    passage = re.search(r'<passage n="(\d+)"[^>]*>[^<]*carry up to 5 unused days', prompt)
    n = passage.group(1) if passage else "1"
    return (
        f"You may carry up to 20 unused days into the next year [{n}]. "
        f"Carried-over days must be taken by 31 March; days not taken by then are lost [{n}]. "
        f"Unused leave is not paid out, except when employment ends [{n}]."
    )


def test_13_generate_mode_shows_a_figure_the_model_moved_marked(browser: Any, live_app: LiveApp) -> None:
    # The same app and database, served by a second Daphne whose only backend is a model that
    # moves a figure (generate mode, as vLLM or Ollama would be configured).
    server = FakeOpenAI(answerer=moved_figure_answer)
    ready, urls = threading.Event(), list[str]()

    def serve() -> None:
        async def main() -> None:
            urls.append(await server.start())
            ready.set()
            await asyncio.Event().wait()

        asyncio.run(main())

    threading.Thread(target=serve, daemon=True).start()
    assert ready.wait(10)
    port = free_port()
    backend = {
        "name": "moving",
        "kind": "openai",
        "base_url": urls[0],
        "model": server.model,
        "answer_mode": "generate",
    }
    env = {**live_app.env, "POLICYDESK_LLM_BACKENDS": json.dumps([backend])}
    log = (ARTIFACTS / "server-11.log").open("wb")
    daphne = subprocess.Popen(
        [sys.executable, "-m", "core.daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    context = browser.new_context(
        base_url=f"http://127.0.0.1:{port}", viewport={"width": 1280, "height": 900}
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}")
        page = context.new_page()
        login(page, "emma")
        ask_and_watch(page, "How many unused days of annual leave can I carry into the next year?")
        answer = page.locator(".msg.assistant").last
        marked = answer.locator(".answer .unsupported")
        assert marked.count() == 1 and marked.first.is_visible()
        assert "20 unused days" in marked.first.inner_text()
        assert "Unused leave is not paid out" in answer.locator(".answer").inner_text()
        assert answer.locator(".answer details").count() == 0, "most of the text is supported: not collapsed"
        assert "carry up to 5 unused days" in answer.locator(".answer blockquote").first.inner_text()
        assert answer.locator(".banner.warn").count() == 1, "the answer is said to be unverified"
        shot(page, "13-generate-moved-figure-marked")
    finally:
        context.close()
        daphne.send_signal(signal.SIGTERM)
        try:
            daphne.wait(20)
        except subprocess.TimeoutExpired:
            daphne.kill()
            daphne.wait()
