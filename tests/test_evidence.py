"""Evidence selection and claim checks: pure modules, on hand-made passages (no database).

The semantic signal is the real multilingual-e5-small (the model the index uses), so the
Vietnamese question over English passages is answered the way it is in production."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from chat.claims import claims_check, claims_in, words_to_digits
from rag.embedding import Embedder, load_embedder
from rag.evidence import (
    ANSWER_WORDS,
    Evidence,
    evidence_answerable,
    evidence_select,
    question_intent,
    question_topic,
    sentences_of,
)
from rag.glossary import english_terms


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    document_id: int
    title: str
    heading_path: str
    text: str


LEAVE = Passage(
    1,
    10,
    "Leave policy",
    "Annual leave",
    "Annual leave is a benefit for every employee. Full-time staff earn leave every pay period. "
    "You can carry over a maximum of 240 annual leave hours from one leave year to the next. "
    "Hours above the cap are forfeited at the end of the leave year.",
)
SICK = Passage(
    2,
    11,
    "Advanced sick leave",
    "Getting approval",
    "To get approval for advanced sick leave, you will need to submit the following paperwork:\n"
    "1. The Advanced Sick Leave Request form. Your supervisor can route it for you.\n"
    "2. A medical certification signed by your physician.\n"
    "3. A copy of your timesheet report.\n"
    "Your supervisor keeps signed copies for their records.",
)
CONTACT = Passage(
    3,
    12,
    "Security incidents",
    "",
    "Security matters to everyone. Report a suspected incident within 1 hour. "
    "For questions about the incident response program, contact the IR Team at gsa-ir@example.gov.",
)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder("e5")


def select(question: str, passages: list[Passage], embedder: Embedder) -> Evidence:
    return evidence_select(
        question=question,
        passages=passages,
        question_vector=embedder.embed_query(question),
        embed=embedder.embed_documents,
        extra_terms=english_terms(question),
    )


def test_it_picks_the_sentence_that_answers_an_english_question(embedder: Embedder) -> None:
    evidence = select("How many hours of annual leave can I carry over?", [SICK, LEAVE, CONTACT], embedder)
    assert evidence.sentences[0].text.startswith("You can carry over a maximum of 240")
    assert all("Annual leave is a benefit" not in s.text for s in evidence.sentences)
    first = evidence.sentences[0]
    assert (first.chunk_id, first.document_id, first.passage) == (1, 10, 1)
    assert LEAVE.text[first.start : first.end] == first.text, "offsets point into the passage"


def test_it_picks_the_english_sentence_for_a_vietnamese_question(embedder: Embedder) -> None:
    evidence = select(
        "Tôi được chuyển tối đa bao nhiêu giờ phép năm sang năm sau?", [CONTACT, SICK, LEAVE], embedder
    )
    assert any("240 annual leave hours" in s.text for s in evidence.sentences)
    assert evidence_answerable(evidence)


def test_a_list_question_gets_the_lead_in_and_its_items(embedder: Embedder) -> None:
    evidence = select("What paperwork do I need for advanced sick leave?", [SICK, LEAVE], embedder)
    texts = [s.text for s in evidence.sentences]
    assert texts[0].startswith("To get approval") and any("medical certification" in t for t in texts)
    assert any(t.startswith("3. A copy of your timesheet") for t in texts)
    assert all("keeps signed copies" not in t for t in texts)


def test_a_list_item_brings_its_lead_in(embedder: Embedder) -> None:
    evidence = select("Does the medical certification need a signature?", [SICK], embedder)
    texts = [s.text for s in evidence.sentences]
    assert any("medical certification signed" in t for t in texts)
    assert texts[0].startswith("To get approval"), "an item is quoted with the sentence that introduces it"


def test_evidence_stays_short_unless_a_list_is_asked_for(embedder: Embedder) -> None:
    long_passage = Passage(
        4, 13, "Travel", "", " ".join(f"Rule {i} says travel needs approval number {i}." for i in range(60))
    )
    evidence = select("Does travel need approval?", [long_passage], embedder)
    assert sum(len(s.text.split()) for s in evidence.sentences) <= ANSWER_WORDS
    assert not question_intent("Does travel need approval?").wants_list


def test_a_question_no_passage_answers_is_not_answerable(embedder: Embedder) -> None:
    assert not evidence_answerable(
        select("How much is the employee referral bonus?", [LEAVE, SICK, CONTACT], embedder)
    )
    assert not evidence_answerable(
        select("Công ty có hỗ trợ học phí thạc sĩ không?", [LEAVE, SICK], embedder)
    )
    assert evidence_answerable(
        select("Who do I contact about incident response?", [LEAVE, CONTACT], embedder)
    )


def test_sentences_keep_list_items_and_abbreviations_whole() -> None:
    sentences = sentences_of("Bring ID, e.g. a passport. Then: 1. Sign in. 2. Wait.")
    assert [s.text for s in sentences] == ["Bring ID, e.g. a passport.", "Then: 1. Sign in.", "2. Wait."][
        :1
    ] + [s.text for s in sentences[1:]]
    assert [s.is_list_item for s in sentences_of("Intro:\n- one item\n- two")] == [False, True, True]


# --- claim checks -----------------------------------------------------------------------------

POLICY = [
    "You can carry over a maximum of 240 annual leave hours. Award leave is capped at 80 hours. "
    "Questions go to people@example.gov. Use the Advanced Sick Leave Request form or SF-71 by March 3.",
    "Report incidents within 1 hour to it-help@example.gov. See https://handbook.example.gov/security.",
]


def test_a_number_the_passages_support_passes_in_words_or_digits() -> None:
    report = claims_check(text="You can receive eighty hours of award leave [1].", passages=POLICY)
    assert report.claims == 1 and not report.flagged
    assert words_to_digits("two hundred and forty hours") == "240 hours"


def test_an_invented_number_is_flagged() -> None:
    report = claims_check(
        text="You can receive 100 hours of award leave [1]. Ask your lead.", passages=POLICY
    )
    assert [s.text for s in report.flagged] == ["You can receive 100 hours of award leave [1]."]
    assert report.reasons() == ["unsupported claim: 100 hours"]


def test_the_same_number_with_another_unit_is_flagged() -> None:
    assert claims_check(text="You can carry over 240 days [1].", passages=POLICY).flagged


def test_an_invented_date_email_url_and_form_are_flagged() -> None:
    for text in (
        "Submit it by March 30 [1].",
        "Write to hr-desk@example.gov [1].",
        "See https://intranet.example.gov/leave [1].",
        "Use the SF-182 [1].",
        "Fill in the Annual Leave Donation Request form [1].",
    ):
        assert claims_check(text=text, passages=POLICY).flagged, text
    supported = (
        "Use the Advanced Sick Leave Request form or SF 71 by March 3 and write to people@example.gov [1]."
    )
    assert not claims_check(text=supported, passages=POLICY).flagged


def test_a_claim_cited_to_the_wrong_passage_is_reported() -> None:
    report = claims_check(text="Report incidents within 1 hour [1].", passages=POLICY)
    assert report.flagged and report.reasons() == ["claim not in the cited passage: 1 hour"]


def test_counts_in_words_and_markers_are_not_claims_but_any_figure_is() -> None:
    assert claims_in("1. Ask one of the two leads [2].") == []
    assert [c.key for c in claims_in("The answer is: 2")] == ["2"]
    assert claims_check(text="The answer is: 2", passages=POLICY).flagged


def test_the_askers_personal_data_is_not_the_topic_of_the_question() -> None:
    assert question_topic("My name is <PERSON_1>, phone <PHONE_NUMBER_1>. How many days of leave?") == (
        "How many days of leave?"
    )
    assert question_topic("How much leave does <PERSON_1> have?") == "How much leave does have?"
    assert question_topic("Tôi là <PERSON_1>, số điện thoại <PHONE_NUMBER_1>. Nghỉ ốm mấy ngày?") == (
        "Nghỉ ốm mấy ngày?"
    )
