"""Answers by backend capability, over the real socket, PostgreSQL and fake or real models:
evidence first, claims checked, unanswerable questions declined without a model."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test.utils import override_settings

from audit.models import AuditEvent
from bench.fake_llm import FakeOpenAI
from llm.config import BackendConfig
from rag.evidence import sentence_in_context, sentences_of
from rag.index import index_models, query_embedder, sentence_cache_clear, sentence_mark, sentence_vectors_seed
from rag.models import Chunk
from rag.selectors import retrieve
from tests.llm_servers import LocalLLMProcess
from tests.test_chat import ask, backends, employee, fake, fake_backend, socket_for, until

pytestmark = [pytest.mark.django_db(transaction=True)]
__all__ = ["employee"]  # the fixture, shared with the chat socket tests

GOLDEN = Path(__file__).parent / "fixtures" / "golden_answers.jsonl"
QUESTION = "How many days of paid annual leave do full-time employees receive?"


def completions(server: FakeOpenAI) -> int:
    return sum(1 for r in server.http.requests if r.path.endswith("/completions"))


def tokens(messages: list[dict[str, object]]) -> list[str]:
    return [str(m["text"]) for m in messages if m["type"] == "token"]


async def test_evidence_mode_streams_the_quotes_before_the_models_first_token(employee: User) -> None:
    async with fake(text="Full-time employees get 20 days a year.", first_token_delay=1.0) as server:
        # The local kind answers in evidence mode unless told otherwise.
        local = BackendConfig(
            name="local", kind="local", base_url=server.http.url + "/v1", model="fake-model"
        )
        async with backends(local), socket_for(employee) as ws:
            await ask(ws, QUESTION)
            messages = await until(ws, "done")
    first, done = tokens(messages)[0], messages[-1]
    assert first.startswith("What the policy says:") and "> Full-time employees receive 20 days" in first
    assert "[1]" in first and "Full-time employees get 20 days a year." not in first
    assert done["timings"]["first_token_ms"] < 1000, "the quotes did not wait for the model"
    assert "In short:" in "".join(tokens(messages)) and done["mode"] == "evidence" and done["verified"]
    sent = next(r.json()["messages"] for r in server.http.requests if r.path.endswith("/completions"))
    assert "20 days of paid annual leave" in sent[-1]["content"]
    assert "sick leave" not in sent[-1]["content"].lower(), "the model is given the quoted sentences only"
    assert "<blockquote>" in done["html"] and "20 days of paid annual leave" in done["html"]


async def test_evidence_mode_withholds_a_summary_with_an_invented_figure(employee: User) -> None:
    async with fake(text="Full-time employees get 25 days a year.") as server:
        local = BackendConfig(
            name="local", kind="local", base_url=server.http.url + "/v1", model="fake-model"
        )
        async with backends(local), socket_for(employee) as ws:
            await ask(ws, QUESTION)
            messages = await until(ws, "done")
    streamed, done = "".join(tokens(messages)), messages[-1]
    assert "25 days" not in streamed and "In short" not in streamed, "never shown, not even while streaming"
    assert "20 days of paid annual leave" in streamed and done["verified"] is True
    event = await sync_to_async(AuditEvent.objects.get)(kind="question")
    assert event.detail["summary_withheld"] == ["summary withheld: unsupported claim: 25 days"]


@pytest.mark.llm
async def test_the_real_local_model_summarises_after_the_quotes(
    employee: User, local_llm: LocalLLMProcess
) -> None:
    local = BackendConfig(name="local", kind="local", base_url=local_llm.url, model="smollm2")
    async with backends(local), socket_for(employee) as ws:
        await ask(ws, QUESTION)
        messages = await until(ws, "done", timeout=120)
    streamed, done = tokens(messages), messages[-1]
    assert "20 days of paid annual leave" in streamed[0]
    assert done["backend"] == "local" and done["mode"] == "evidence"
    event = await sync_to_async(AuditEvent.objects.get)(kind="question")
    # The model wrote a sentence: shown after the quotes, or withheld with the reason.
    assert event.attempts[-1]["outcome"] == "ok" and (event.completion_tokens or 0) > 0
    assert (len(streamed) > 1) != bool(event.detail["summary_withheld"])
    assert done["timings"]["first_token_ms"] < 1500


@pytest.mark.parametrize(
    ("question", "not_covered"),
    [
        ("What is the dress code for the office?", "The policies I have do not cover this question."),
        (
            "Công ty có hỗ trợ học phí học thạc sĩ không?",
            "Các chính sách hiện có không đề cập đến câu hỏi này.",
        ),
    ],
)
async def test_an_unanswerable_question_is_declined_without_asking_a_model(
    employee: User, question: str, not_covered: str
) -> None:
    async with fake(text="Guessing: jeans are fine [1].") as server:
        async with backends(fake_backend(server.http.url + "/v1")), socket_for(employee) as ws:
            await ask(ws, question)
            messages = await until(ws, "done")
        assert completions(server) == 0
    done = messages[-1]
    assert done["declined"] is True and done["verified"] is True
    assert not_covered in "".join(tokens(messages))
    assert re.search(r'<a href="/documents/\d+/">Leave policy</a>', done["html"]), (
        "the nearest document is offered"
    )
    assert "people@kestrel.example" in done["html"], "a contact the policy names is offered"
    event = await sync_to_async(AuditEvent.objects.get)(kind="question")
    assert event.outcome == "declined" and event.detail["declined"] is True


async def test_an_invented_number_is_flagged_and_the_answer_unverified(employee: User) -> None:
    async with fake(
        text="Full-time employees receive 25 days of paid annual leave [1]. Leave accrues monthly [1]."
    ) as server:
        async with backends(fake_backend(server.http.url + "/v1")), socket_for(employee) as ws:
            await ask(ws, QUESTION)
            done = (await until(ws, "done"))[-1]
    assert done["verified"] is False and done["checks"] == ["unsupported claim: 25 days"]
    assert re.search(r'<span class="unsupported"[^>]*>Full-time employees receive 25 days', done["html"])
    assert "Leave accrues monthly" in done["html"] and "What the policy says" in done["html"]
    event = await sync_to_async(AuditEvent.objects.get)(kind="question")
    assert event.verified is False and event.detail["checks"] == ["unsupported claim: 25 days"]


async def test_an_invented_email_and_date_are_flagged(employee: User) -> None:
    text = "Ask leave-desk@kestrel.example [1]. Carry-over ends on March 31 [1]."
    async with fake(text=text) as server:
        async with backends(fake_backend(server.http.url + "/v1")), socket_for(employee) as ws:
            await ask(ws, QUESTION)
            done = (await until(ws, "done"))[-1]
    assert done["verified"] is False
    assert done["checks"] == ["unsupported claim: leave-desk@kestrel.example", "unsupported claim: March 31"]


async def test_a_supported_generated_answer_is_verified_and_followed_by_the_evidence(employee: User) -> None:
    text = "Full-time staff receive twenty days of paid annual leave each year [1]."
    async with fake(text=text) as server:
        async with backends(fake_backend(server.http.url + "/v1")), socket_for(employee) as ws:
            await ask(ws, QUESTION)
            messages = await until(ws, "done")
    done, streamed = messages[-1], "".join(tokens(messages))
    assert done["verified"] is True and done["checks"] == [] and done["mode"] == "generate"
    assert streamed.index(text) < streamed.index("**What the policy says**") < streamed.index("> Full-time")
    citations = messages[-2]["items"]
    assert citations[0]["cited"] is True and "hl=" in citations[0]["url"]


async def test_a_fabricated_citation_is_removed_and_reported(employee: User) -> None:
    async with fake(text="You get 20 days of paid annual leave [1][7].") as server:
        async with backends(fake_backend(server.http.url + "/v1")), socket_for(employee) as ws:
            await ask(ws, QUESTION)
            done = (await until(ws, "done"))[-1]
    assert "[7]" not in done["html"]
    assert "removed 1 citation(s) to passages that were not supplied" in done["checks"]


def test_evaluate_answers_scores_a_golden_file(employee: User) -> None:
    # Every backend is down (nothing listens on port 9): evidence mode without a model.
    down = BackendConfig(
        name="local", kind="local", base_url="http://127.0.0.1:9/v1", model="m", connect_timeout=0.2
    )
    out = io.StringIO()
    with override_settings(LLM_BACKENDS=(down,), LLM_PROBE_INTERVAL=0):
        call_command("evaluate_answers", str(GOLDEN), "--user", "emp", stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    per_question, totals = lines[:-1], lines[-1]
    assert len(per_question) == 3 and totals["questions"] == 3
    assert [q["facts_present"] for q in per_question] == [True, True, None]
    assert totals["facts_present"] == 1.0 and totals["unanswerable_declined"] == 1.0
    assert totals["primary_source_given"] == 1.0 and totals["answers_with_placeholders"] == 0
    assert set(totals["by_lang"]) == {"en", "vi"} and totals["by_kind"]["unanswerable"]["questions"] == 1
    assert totals["first_content_ms_p95"] is not None


def test_evaluate_answers_refuses_a_malformed_golden_file(employee: User, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok", "sources": "not a list"}\n')
    with pytest.raises(Exception, match="'sources' must be a list"):
        call_command("evaluate_answers", str(bad), "--user", "emp", stdout=io.StringIO())


def test_ingestion_stores_each_sentences_vector_so_answering_embeds_none(employee: User) -> None:
    chunk = Chunk.objects.filter(document__source_path="leave-policy.md").order_by("ordinal").first()
    assert chunk is not None and chunk.sentence_model == sentence_mark(index_models().model)
    assert chunk.sentence_vectors is not None
    sentences = [s.text for s in sentences_of(chunk.text)]
    stored = np.frombuffer(bytes(chunk.sentence_vectors), dtype=np.float16).reshape(len(sentences), -1)
    in_context = sentence_in_context(chunk.document_title, chunk.heading_path, sentences[0])
    live = np.asarray(query_embedder().embed_documents([in_context]))[0]
    assert float(stored[0].astype(np.float32) @ live) > 0.999, (
        "the stored vector is the sentence's, in context"
    )
    assert chunk.sentences.count() == len(sentences), "one row per sentence for the sentence leg"
    sentence_cache_clear()
    passages = retrieve(query=QUESTION, user=employee, k=3)
    assert sentence_vectors_seed(passages=passages) >= len(sentences)
    assert sentence_vectors_seed(passages=passages) == 0, "already cached"


def test_reembed_stores_sentence_vectors_for_passages_that_lack_them(employee: User) -> None:
    Chunk.objects.update(sentence_vectors=None, sentence_model="")  # as ingested before they existed
    out = io.StringIO()
    call_command("reembed", stdout=out)
    assert f"stored sentence vectors for {Chunk.objects.count()} passages" in out.getvalue()
    assert not Chunk.objects.filter(sentence_vectors=None).exists()
    assert set(Chunk.objects.values_list("sentence_model", flat=True)) == {
        sentence_mark(index_models().model)
    }
    again = io.StringIO()
    call_command("reembed", stdout=again)
    assert "stored sentence vectors" not in again.getvalue(), "nothing left to do"
