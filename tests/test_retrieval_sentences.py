"""The sentence leg of retrieval on the real PostgreSQL + pgvector: one row per sentence, each
embedded with its document title and heading path, found through its HNSW index under the
same access rules as passages, and filled again by `manage.py reembed`."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from rag.evidence import sentence_in_context, sentences_of
from rag.index import query_embedder
from rag.models import Chunk, ChunkSentence
from rag.selectors import retrieve, retrieve_for_question
from tests.rag_helpers import ingest_bytes

pytestmark = [pytest.mark.django_db(transaction=True)]

CARRY_OVER = b"""# Leave handbook

## Annual leave carry-over

Unused days are looked at every January. You may keep up to 240 hours. The rest is gone.
"""
DISTRACTORS = {
    "parking.md": b"# Parking\n\nYou may keep your car in the garage for up to 240 hours a month. "
    b"Ask the facilities desk for a permit.\n",
    "laptops.md": b"# Laptops\n\nEvery new employee gets a laptop on the first day. Keep it locked.\n",
}


@pytest.fixture
def handbook(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    ingest_bytes(CARRY_OVER, "leave.md")
    for name, data in DISTRACTORS.items():
        ingest_bytes(data, name)


def test_each_sentence_gets_a_row_holding_its_vector_in_context(handbook: None) -> None:
    chunk = Chunk.objects.get(document__source_path="leave.md")
    sentences = [s.text for s in sentences_of(chunk.text)]
    rows = list(ChunkSentence.objects.filter(chunk=chunk).order_by("ordinal"))
    assert [r.ordinal for r in rows] == list(range(len(sentences)))
    assert all(r.document_id == chunk.document_id for r in rows)
    second = sentence_in_context(chunk.document_title, chunk.heading_path, sentences[1])
    assert chunk.heading_path == "Annual leave carry-over" and second.startswith(
        "Leave handbook > Annual leave"
    )
    live = np.asarray(query_embedder().embed_documents([second])[0], dtype=np.float32)
    assert float(np.asarray(rows[1].embedding, dtype=np.float32) @ live) > 0.99


def test_the_sentence_leg_finds_a_passage_by_a_sentence_whose_topic_is_only_in_its_heading(
    handbook: None,
) -> None:
    """ "You may keep up to 240 hours" says nothing of leave; its heading does. The parking page
    shares the sentence's words ("keep", "up to 240 hours") but not its topic."""
    found = retrieve(query="How much annual leave can I carry over?", user=None, k=3, mode="sentence")
    assert [c.source_path for c in found][:1] == ["leave.md"]
    hybrid = retrieve(query="How much annual leave can I carry over?", user=None, k=1)
    assert hybrid[0].source_path == "leave.md"


def test_the_sentence_leg_keeps_to_the_documents_the_user_may_see(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    legal = Group.objects.create(name="legal")
    ingest_bytes(CARRY_OVER, "leave.md", allowed_groups=[legal])
    ingest_bytes(DISTRACTORS["parking.md"], "parking.md")
    outsider = User.objects.create_user("outsider")
    member = User.objects.create_user("member")
    member.groups.add(legal)
    question = "How much annual leave can I carry over?"
    assert "leave.md" not in {c.source_path for c in retrieve(query=question, user=outsider, mode="sentence")}
    assert "leave.md" not in {c.source_path for c in retrieve(query=question, user=None, k=5)}
    assert retrieve(query=question, user=member, k=1, mode="sentence")[0].source_path == "leave.md"


def test_reembed_fills_the_rows_of_passages_that_have_none(handbook: None) -> None:
    expected = ChunkSentence.objects.count()
    ChunkSentence.objects.all().delete()
    assert retrieve(query="annual leave carry over", user=None, mode="sentence") == []
    call_command("reembed", stdout=io.StringIO())
    assert ChunkSentence.objects.count() == expected
    assert (
        retrieve(query="annual leave carry over", user=None, k=1, mode="sentence")[0].source_path
        == "leave.md"
    )


def test_an_english_question_searches_with_the_policy_words_for_its_everyday_ones(handbook: None) -> None:
    retrieval = retrieve_for_question(query="Do I lose my PTO at the end of the year?", user=None, k=1)
    assert "annual" in retrieval.english_terms.split() and "forfeit" in retrieval.english_terms.split()
    assert retrieval.passages[0].source_path == "leave.md"
