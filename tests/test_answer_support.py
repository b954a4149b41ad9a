"""What is shown follows from the support check, through the real pipeline: the chat socket,
PostgreSQL, the real e5 model, and a fake OpenAI-compatible model on a real socket.

Generate mode marks a sentence whose figure was moved and the answer is not verified; an honest
restatement is verified; a mostly unsupported text is collapsed after the evidence. Evidence mode
shows the model's line only when it is supported. The audit event says which, and why."""

from __future__ import annotations

import asyncio
import io
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test.utils import override_settings

from audit.models import AuditEvent
from bench.fake_llm import FakeOpenAI
from chat.models import Message
from llm.config import BackendConfig
from tests.test_chat import ask, backends, employee, fake, fake_backend, socket_for, until

pytestmark = [pytest.mark.django_db(transaction=True)]
__all__ = ["employee"]

GOLDEN = Path(__file__).parent / "fixtures" / "golden_answers.jsonl"
QUESTION = "How many days of paid annual leave do full-time employees receive?"
HONEST = "Full-time employees receive 20 days of paid annual leave per calendar year [1]."
# "20" is in the passage, but for annual leave, not for the days that carry over.
MOVED = "Up to 20 unused days may be carried over to the next year [1]."


async def generated(user: User, text: str, question: str = QUESTION) -> dict[str, Any]:
    async with fake(text=text) as server:
        async with backends(fake_backend(server.http.url + "/v1")), socket_for(user) as ws:
            await ask(ws, question)
            messages = await until(ws, "done")
    assert messages[-1]["type"] == "done", messages[-1]
    return messages[-1]


async def audit_detail() -> dict[str, Any]:
    event = await sync_to_async(AuditEvent.objects.get)(kind="question")
    return dict(event.detail)


async def test_a_moved_figure_is_marked_and_the_answer_not_verified(employee: User) -> None:
    done = await generated(employee, f"{HONEST} {MOVED} Leave accrues monthly [1].")
    assert done["verified"] is False and done["checks"] == ["unsupported claim: 20 unused days"]
    html = str(done["html"])
    assert re.search(r'<span class="unsupported"[^>]*>Up to 20 unused days', html)
    assert not re.search(r'<span class="unsupported"[^>]*>Full-time employees receive 20', html)
    assert html.index("Full-time employees receive 20") < html.index("What the policy says"), "not collapsed"
    support = done["support"]
    assert isinstance(support, dict) and support["status"] == "partly supported"
    assert support["model_sentences"] == {
        "written": 3, "supported": 2, "shown": 2, "marked": 1, "collapsed": 0, "withheld": 0, "shown_unsupported": 0,
    }  # fmt: skip
    detail = await audit_detail()
    assert detail["support"] == "partly supported"
    assert detail["support_reasons"] == ["unsupported claim: 20 unused days"]


async def test_an_honest_restatement_is_verified(employee: User) -> None:
    done = await generated(employee, "Full-time staff get twenty days of paid annual leave per year [1].")
    assert done["verified"] is True and done["checks"] == []
    assert "unsupported" not in str(done["html"])
    assert (await audit_detail())["support"] == "verified"


async def test_a_mostly_unsupported_answer_leads_with_the_evidence_and_collapses_the_model_text(
    employee: User,
) -> None:
    text = "The answer is: 30 days [1]. You must hold a driving licence to take annual leave [1]."
    done = await generated(employee, text)
    html = str(done["html"])
    assert done["verified"] is False
    assert html.index("What the policy says") < html.index("<details")
    assert html.index("<blockquote>") < html.index("<details")
    assert re.search(
        r'<details class="model-text"><summary>Model summary \(not supported by the policy text\)</summary>',
        html,
    )
    assert re.search(r"<details[^>]*>.*The answer is: 30 days.*</details>", html, re.S)
    assert done["support"]["status"] == "unsupported" and done["support"]["model_sentences"]["collapsed"] == 2
    detail = await audit_detail()
    assert detail["support"] == "unsupported" and "template opening" in detail["support_reasons"]
    stored = await sync_to_async(Message.objects.get)(role="assistant")
    assert stored.text.startswith("What the policy says:"), "the stored answer is what was shown"


async def test_the_collapsed_model_text_is_labelled_in_vietnamese_for_a_vietnamese_question(
    employee: User,
) -> None:
    done = await generated(
        employee,
        "Câu trả lời là: 30 ngày [1]. Bạn phải có bằng lái xe [1].",
        question="Nhân viên toàn thời gian được bao nhiêu ngày nghỉ phép năm có lương?",
    )
    html = str(done["html"])
    assert "<summary>Tóm tắt của mô hình (không được văn bản chính sách xác nhận)</summary>" in html
    assert html.index("Chính sách nêu rõ:") < html.index("<details")


async def test_evidence_mode_withholds_a_summary_whose_negation_the_policy_does_not_make(
    employee: User,
) -> None:
    async with fake(text="Full-time employees do not receive 20 days of paid annual leave.") as server:
        local = BackendConfig(
            name="local", kind="local", base_url=server.http.url + "/v1", model="fake-model"
        )
        async with backends(local), socket_for(employee) as ws:
            await ask(ws, QUESTION)
            messages = await until(ws, "done")
    streamed = "".join(str(m["text"]) for m in messages if m["type"] == "token")
    done = messages[-1]
    assert "do not receive" not in streamed and "In short" not in streamed
    assert done["verified"] is True, "the quotes alone are the answer"
    assert done["support"]["model_sentences"]["withheld"] == 1
    detail = await audit_detail()
    assert detail["support"] == "unsupported"
    assert detail["summary_withheld"] == ["summary withheld: negation not in the policy sentence"]


async def test_evidence_mode_shows_a_supported_summary(employee: User) -> None:
    async with fake(text="Full-time employees get 20 days of paid annual leave each year.") as server:
        local = BackendConfig(
            name="local", kind="local", base_url=server.http.url + "/v1", model="fake-model"
        )
        async with backends(local), socket_for(employee) as ws:
            await ask(ws, QUESTION)
            messages = await until(ws, "done")
    streamed = "".join(str(m["text"]) for m in messages if m["type"] == "token")
    done = messages[-1]
    assert "**In short:** Full-time employees get 20 days" in streamed and done["verified"] is True
    assert done["support"]["model_sentences"]["shown"] == 1
    assert done["timings"]["support_ms"] is not None
    assert (await audit_detail())["support"] == "verified"


def serve(server: FakeOpenAI, ready: threading.Event, urls: list[str]) -> None:
    """The fake model on its own event loop, for a test that is not async itself."""

    async def main() -> None:
        urls.append(await server.start())
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def test_evaluate_answers_counts_the_model_sentences_shown_supported_and_marked(employee: User) -> None:
    server = FakeOpenAI(text=f"{HONEST} {MOVED} Leave accrues monthly [1].")
    ready, urls = threading.Event(), list[str]()
    thread = threading.Thread(target=serve, args=(server, ready, urls), daemon=True)
    thread.start()
    assert ready.wait(10)
    out = io.StringIO()
    with override_settings(LLM_BACKENDS=(fake_backend(urls[0]),), LLM_PROBE_INTERVAL=0):
        call_command("evaluate_answers", str(GOLDEN), "--user", "emp", stdout=out)
    totals = json.loads(out.getvalue().splitlines()[-1])
    answered = totals["questions"] - round(totals["unanswerable_declined"] * totals["unanswerable"])
    assert totals["model_sentences_written"] == 3 * answered
    assert totals["model_sentences_supported"] == totals["model_sentences_shown"] == 2 * answered
    assert totals["model_sentences_marked"] == answered and totals["model_sentences_withheld"] == 0
    assert totals["answers_showing_unsupported_model_text"] == 0


async def test_when_the_check_cannot_run_the_answer_is_stored_unverified_and_marked(
    employee: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: object) -> None:
        raise RuntimeError("the embedder is gone")

    monkeypatch.setattr("chat.recording.support_check", broken)  # a fault inside our own process
    done = await generated(employee, HONEST)
    assert done["verified"] is False and done["checks"] == ["the support check could not run"]
    assert '<span class="unsupported"' in str(done["html"])
    stored = await sync_to_async(Message.objects.get)(role="assistant")
    assert stored.verified is False and (await audit_detail())["support"] == "unsupported"
