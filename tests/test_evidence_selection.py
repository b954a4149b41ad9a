"""Evidence selection on hand-made passages with the real multilingual-e5-small: procedures get
their steps, questions of several parts get a sentence per part, the sentence that answers
outranks the merely topical one; and chunks keep list items on lines of their own."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from rag.chunking import chunk_document, text_blocks
from rag.embedding import Embedder, load_embedder
from rag.evidence import (
    LIST_ANSWER_WORDS,
    Evidence,
    evidence_answerable,
    evidence_select,
    question_parts,
    sentence_in_context,
    sentences_of,
)
from rag.glossary import english_paraphrase_terms, english_terms
from rag.parsing import parse_document


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    document_id: int
    title: str
    heading_path: str
    text: str


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder("e5")


def select(question: str, passages: list[Passage], embedder: Embedder) -> Evidence:
    vietnamese = english_terms(question) if any(ord(c) > 0x1EA0 for c in question) else ""
    return evidence_select(
        question=question,
        passages=passages,
        question_vector=embedder.embed_query(question),
        embed=embedder.embed_documents,
        extra_terms=vietnamese or english_paraphrase_terms(question),
        embed_questions=embedder.embed_queries,
    )


CONCUR = Passage(
    1,
    20,
    "Get access to Concur",
    "Access",
    "Concur is the travel booking system every traveller uses.\n"
    "To get access to Concur for the first time, follow these steps:\n"
    "1. Get a travel vendor ID from the finance team.\n"
    "2. Complete the Travel Card Training and keep the certificate.\n"
    "3. Apply for a GSA travel card through your approving official.\n"
    "4. Complete the CGE Access Request Form and send it to the travel team.\n"
    "5. Wait for the confirmation email, then sign in with your PIV card.\n"
    "Access usually takes two weeks.",
)
TRAVEL_CARD = Passage(
    2,
    21,
    "Get a travel card",
    "",
    "A GSA travel card will help you pay for lodging, taxis, and other expenses while on your trip. "
    "Use it for official travel only.",
)


def test_a_procedure_question_gets_every_step_not_only_the_lead_in(embedder: Embedder) -> None:
    evidence = select("What are the steps to get access to Concur?", [TRAVEL_CARD, CONCUR], embedder)
    texts = [s.text for s in evidence.sentences]
    assert any(t.startswith("To get access to Concur") for t in texts)
    for step in ("1. Get a travel vendor ID", "2. Complete the Travel Card Training", "5. Wait for the"):
        assert any(t.startswith(step) for t in texts), step
    assert sum(len(t.split()) for t in texts) <= LIST_ANSWER_WORDS


def test_items_marked_with_plus_signs_are_list_items() -> None:
    sentences = sentences_of("Before the meeting:\n+ Request ASL interpreters. Early.\n+ Share the agenda.")
    assert [s.is_list_item for s in sentences] == [False, True, False, True]


LWOP = Passage(
    3,
    30,
    "Leave types",
    "Unpaid leave",
    "Leave without pay (LWOP) is a temporary non-pay status. Your immediate supervisor can approve "
    "80 hours or less of LWOP. Anything longer needs the approval of your director. LWOP affects "
    "your benefits and your service computation date, so plan it with HR. Requests for LWOP are "
    "entered in HR Links like any other leave request.",
)
LWOP_EMAILS = Passage(
    4,
    30,
    "Leave types",
    "Unpaid leave > Approvals",
    "Once LWOP is approved, forward the approval emails to TTS-peopleops@example.gov so the "
    "timekeeper can code your timesheet. Keep a copy for your own records.",
)
ANNUAL = Passage(
    5,
    31,
    "Leave types",
    "Annual leave",
    "You can carry over a maximum of 240 annual leave hours into the next leave year. Hours above "
    "the cap are forfeited unless they were restored. Your supervisor approves annual leave in HR Links.",
)


def test_each_part_of_a_two_part_question_gets_its_sentence(embedder: Embedder) -> None:
    question = (
        "How many hours of leave without pay can my immediate supervisor approve alone, "
        "and where do I send the approval emails?"
    )
    assert len(question_parts(question)) == 2
    evidence = select(question, [LWOP, ANNUAL, LWOP_EMAILS], embedder)
    shown = " ".join(s.text for s in evidence.sentences)
    assert "80 hours or less of LWOP" in shown
    assert "TTS-peopleops@example.gov" in shown


def test_a_vietnamese_question_of_two_parts_is_split_at_its_question_marks() -> None:
    parts = question_parts(
        "Award leave có hết hạn không? Nếu mình nghỉ việc thì số award leave còn lại có được trả tiền không?"
    )
    assert parts == [
        "Award leave có hết hạn không?",
        "Nếu mình nghỉ việc thì số award leave còn lại có được trả tiền không?",
    ]
    assert question_parts("My baby was just born. What do I need to send HR?") == [
        "My baby was just born. What do I need to send HR?"
    ], "a statement before the question is context, not a part"
    assert question_parts("How many days of leave do I get?") == ["How many days of leave do I get?"]


BEREAVEMENT = Passage(
    6,
    40,
    "Leave types",
    "Sick leave",
    "You can use up to 13 days of sick leave each leave year for family care and bereavement, "
    "including leave to make arrangements for or attend the funeral of a family member.",
)


def test_the_sentence_that_answers_outranks_a_topical_one_from_a_better_ranked_passage(
    embedder: Embedder,
) -> None:
    evidence = select(
        "If I don't use all my annual leave this year, how much can I keep for next year?",
        [BEREAVEMENT, ANNUAL],
        embedder,
    )
    assert evidence.sentences, "answerable"
    best = max(evidence.sentences, key=lambda s: s.score)
    assert "240 annual leave hours" in best.text
    assert evidence_answerable(evidence)


def test_a_near_miss_scores_below_the_question_its_passages_answer(embedder: Embedder) -> None:
    """Both questions are about annual leave; only one asks what the passages say. The near miss
    shares the topic's words, not the detail's, so its evidence covers less of it."""
    answered = select(
        "How many annual leave hours can I carry over to the next year?", [ANNUAL, LWOP], embedder
    )
    near_miss = select(
        "How many hours of annual leave can I donate to a colleague through the leave bank?",
        [ANNUAL, LWOP],
        embedder,
    )
    assert near_miss.evidence_coverage < answered.evidence_coverage
    assert near_miss.answerability < answered.answerability
    assert evidence_answerable(answered)


def test_sentences_are_embedded_with_their_title_and_heading_as_context() -> None:
    assert sentence_in_context("Leave types", "Annual leave", "You can carry over 240 hours.") == (
        "Leave types > Annual leave\nYou can carry over 240 hours."
    )
    assert sentence_in_context("", "", "Alone.") == "Alone."


def test_chunks_keep_paragraphs_and_list_items_on_lines_of_their_own() -> None:
    source = (
        b"# Transit\n\n## Enrolling\n\nThe step-by-step guidance below is\nspecific to TTS employees:\n\n"
        b"- Go to\n  [the transit site](https://transit.example.gov/)\n- Click on **Register**\n"
        b"- Login using your government email\n\nIf you will be [extending your\ntrip](https://x.example) "
        b"see the [travel FAQ][faq].\n"
    )
    parsed = parse_document(source, "transit.md")
    assert text_blocks(parsed.sections[0].text) == [
        "The step-by-step guidance below is specific to TTS employees:",
        "- Go to the transit site",
        "- Click on Register",
        "- Login using your government email",
        "If you will be extending your trip see the travel FAQ.",
    ]
    (draft,) = chunk_document(parsed, count_tokens=lambda text: len(text.split()))
    lines = draft.text.split("\n")
    assert lines[1:4] == [
        "- Go to the transit site",
        "- Click on Register",
        "- Login using your government email",
    ]
    assert [s.is_list_item for s in sentences_of(draft.text)] == [False, True, True, True, False]


def test_english_everyday_words_bring_the_policy_words() -> None:
    assert "leave" in english_paraphrase_terms("Can I take time off next week?").split()
    assert "GFE" in english_paraphrase_terms("My laptop broke").split()
    assert english_paraphrase_terms("How much annual leave do I get?") == ""
    assert "reimbursement" in english_paraphrase_terms("Will they reimburse my train ticket?").split()
