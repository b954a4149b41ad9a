"""The support check alone (chat/support.py): each rule, in English and Vietnamese, on hand-made
policy sentences, with the real multilingual-e5-small (the model the index uses) for similarity.
No database, no LLM."""

from __future__ import annotations

import pytest

from chat.support import Source, SupportReport, passage_source, support_check, text_sentences
from rag.embedding import Embedder, load_embedder

LEAVE = (
    "Full-time employees receive 20 days of paid annual leave per calendar year.",
    "Leave accrues monthly.",
    "Up to five unused days may be carried over to the next year.",
    "Questions go to people@kestrel.example.",
)
FAMILY = (
    "Employees receive up to 5 days of paid leave when a close family member dies, and 2 days for other relatives.",
    "Employees may take 2 days of paid leave for other relatives.",
    "You do not need a doctor's note for absences of three days or less.",
    "Only your line manager can approve a request for special leave.",
    "Use the Special Leave Request form in Harbor by March 31.",
)
SECURITY = ("Report a suspected incident within 1 hour to it-help@kestrel.example.",)
TRANSFER = ("Your Workforce Relations HR Specialist reviews the application within 10 business days.",)
PAPERWORK = (
    "To get advanced sick leave approved, submit the following paperwork.",
    "1. The Advanced Sick Leave Request form.",
    "2. A medical certification signed by your physician.",
    "3. A copy of your timesheet report.",
)
SOURCES = [
    Source(n=1, sentences=LEAVE, quoted=LEAVE[:3], context="Leave policy > Annual leave"),
    Source(n=2, sentences=FAMILY, quoted=FAMILY[:2], context="Leave policy > Bereavement leave"),
    Source(n=3, sentences=SECURITY, quoted=SECURITY, context="Security > Incidents"),
    Source(
        n=4, sentences=TRANSFER, quoted=TRANSFER, context="Voluntary Leave Transfer Program (VLTP) > Applying"
    ),
    Source(n=5, sentences=PAPERWORK, quoted=PAPERWORK, context="Advanced sick leave > Approval"),
]
QUESTION = "How many days of paid annual leave do full-time employees receive?"
QUESTION_VI = "Nhân viên toàn thời gian được bao nhiêu ngày nghỉ phép năm có lương?"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder("e5")


def check(embedder: Embedder, text: str, *, question: str = QUESTION, language: str = "en") -> SupportReport:
    return support_check(
        text=text, question=question, language=language, sources=SOURCES, embed=embedder.embed_documents
    )


def reasons(embedder: Embedder, text: str, **kwargs: str) -> list[str]:
    report = check(embedder, text, **kwargs)
    assert len(report.sentences) == 1, [s.text for s in report.sentences]
    return report.sentences[0].reasons


# --- what passes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Full-time employees receive 20 days of paid annual leave per calendar year [1].",
        "According to the policy, full-time staff get twenty days of paid annual leave per year [1].",
        "Up to five unused days may be carried over to the next year.",  # no marker: among the quotes
        "Employees may take 2 days of paid leave for other relatives [2].",
    ],
)
def test_an_honest_restatement_is_supported(embedder: Embedder, text: str) -> None:
    report = check(embedder, text)
    assert report.status == "verified" and not report.flagged, report.sentences[0].reasons
    assert report.sentences[0].aligned in LEAVE + FAMILY


def test_a_placeholder_for_the_askers_own_data_is_not_an_unsupported_word(embedder: Embedder) -> None:
    text = "<PERSON_1>, full-time employees receive 20 days of paid annual leave per calendar year [1]."
    assert reasons(embedder, text) == []


# --- figures: in the aligned sentence, in the same role ----------------------------------------------


def test_an_invented_figure_is_flagged(embedder: Embedder) -> None:
    text = "Full-time employees receive 25 days of paid annual leave per calendar year [1]."
    assert reasons(embedder, text) == ["unsupported claim: 25 days"]


def test_a_figure_from_another_sentence_of_the_cited_passage_is_flagged(embedder: Embedder) -> None:
    # "20 days" is in passage 1, but not in the sentence about carrying days over.
    text = "Up to 20 days may be carried over to the next year [1]."
    assert reasons(embedder, text) == ["unsupported claim: 20 days"]


def test_a_figure_from_another_passage_is_flagged(embedder: Embedder) -> None:
    text = "Full-time employees receive 5 days of paid annual leave per calendar year [1]."
    assert reasons(embedder, text) == ["unsupported claim: 5 days"]


def test_a_figure_in_the_aligned_sentence_but_for_something_else_is_flagged(embedder: Embedder) -> None:
    # The policy's 2 days are for other relatives, its 5 days for a close family member.
    text = "Employees receive up to 2 days of paid leave when a close family member dies [2]."
    assert reasons(embedder, text) == ["claim used for something else: 2 days"]
    honest = "Employees receive up to 5 days of paid leave when a close family member dies [2]."
    assert reasons(embedder, honest) == []


def test_a_sentence_is_checked_against_the_passage_it_cites(embedder: Embedder) -> None:
    # True of passage 3, but it cites passage 1.
    assert "unsupported claim: 1 hour" in reasons(embedder, "Report a suspected incident within 1 hour [1].")
    assert reasons(embedder, "Report a suspected incident within 1 hour [3].") == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Questions go to hr-desk@kestrel.example [1].", "unsupported claim: hr-desk@kestrel.example"),
        ("Use the Special Leave Request form in Harbor by April 30 [2].", "unsupported claim: April 30"),
        ("Use the Annual Leave Donation form in Harbor by March 31 [2].", "unsupported claim: Annual Leave Donation form"),
    ],
)  # fmt: skip
def test_an_address_date_or_form_not_in_the_aligned_sentence_is_flagged(
    embedder: Embedder, text: str, reason: str
) -> None:
    assert reason in reasons(embedder, text)


# --- names --------------------------------------------------------------------------------------------


def test_a_name_swapped_for_another_is_flagged(embedder: Embedder) -> None:
    text = "Your Workforce Relations PPL Specialist reviews the application within 10 business days [4]."
    assert reasons(embedder, text) == ["name not in the policy sentence: PPL"]


def test_a_name_from_the_passages_title_may_be_added_when_none_is_dropped(embedder: Embedder) -> None:
    text = "Your Workforce Relations HR Specialist reviews your VLTP application within 10 business days [4]."
    assert reasons(embedder, text) == []
    swapped = "Your Workforce Relations VLTP Specialist reviews the application within 10 business days [4]."
    assert reasons(embedder, swapped) == ["name not in the policy sentence: VLTP"]


# --- polarity ----------------------------------------------------------------------------------------


def test_a_negation_the_policy_does_not_make_is_flagged(embedder: Embedder) -> None:
    text = "Full-time employees do not receive 20 days of paid annual leave per calendar year [1]."
    assert reasons(embedder, text) == ["negation not in the policy sentence"]


def test_a_negation_of_the_policy_that_the_sentence_drops_is_flagged(embedder: Embedder) -> None:
    text = "You need a doctor's note for absences of three days or less [2]."
    assert reasons(embedder, text) == ["the policy sentence's negation is missing"]


def test_only_must_come_from_the_policy(embedder: Embedder) -> None:
    text = "Only full-time employees receive 20 days of paid annual leave per calendar year [1]."
    assert reasons(embedder, text) == ["'only' not in the policy sentence"]
    assert reasons(embedder, "Only your line manager can approve a request for special leave [2].") == []


def test_a_vietnamese_negation_is_read_as_one(embedder: Embedder) -> None:
    text = "Nhân viên toàn thời gian không được 20 ngày nghỉ phép năm có lương mỗi năm [1]."
    assert "negation not in the policy sentence" in reasons(
        embedder, text, question=QUESTION_VI, language="vi"
    )


def test_yes_followed_by_a_negation_contradicts_itself(embedder: Embedder) -> None:
    text = "Yes, you do not need a doctor's note for absences of three days or less [2]."
    assert "says yes and no" in reasons(embedder, text)


# --- coverage ----------------------------------------------------------------------------------------


def test_an_invented_requirement_is_flagged(embedder: Embedder) -> None:
    text = "Full-time employees need a driving licence to receive paid annual leave [1]."
    found = reasons(embedder, text)
    assert found and all(
        r.startswith(("not in the policy sentence", "no policy sentence says this")) for r in found
    )


def test_a_sentence_about_something_the_policy_never_mentions_is_flagged(embedder: Embedder) -> None:
    assert reasons(embedder, "The company canteen serves vegetarian lunches every Friday [1].")


def test_a_sentence_gathering_a_list_is_covered_by_the_list_it_gathers(embedder: Embedder) -> None:
    text = "Submit a medical certification and a copy of your timesheet report to get advanced sick leave approved [5]."
    assert reasons(embedder, text) == []


def test_a_lead_in_to_unsupported_items_fails_with_them(embedder: Embedder) -> None:
    text = (
        "To get advanced sick leave approved, follow these steps:\n"
        "1. Call the company president on his mobile phone [5].\n"
        "2. Fax the request to the Paris office [5]."
    )
    report = check(embedder, text)
    assert report.sentences[0].reasons == ["introduces unsupported text"]
    assert report.status == "unsupported"


# --- degeneration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason", "language"),
    [
        ("The answer is: 20 days.", "template opening", "en"),
        ("To answer the employee's question, leave accrues monthly [1].", "template opening", "en"),
        ("Leave is handled at the People's Office at the People's Office at the People's Office.", "repetition", "en"),
        (QUESTION, "echoes the question", "en"),
        ("Full-time employees receive 20 days of paid annual leave per", "no sentence end", "en"),
        ("Call the request_leave() function in Harbor [1].", "code identifier: request_leave()", "en"),
        ("Book leave with submitLeaveRequest in Harbor [1].", "code identifier: submitLeaveRequest", "en"),
        ("Nhân viên toàn thời gian được 20 ngày nghỉ phép năm có lương [1].", "wrong language", "en"),
        ("全职员工每年有20天带薪年假 [1]。", "wrong language", "vi"),
        ("Nhân viên toàn thời gian được bao nhiêu ngày nghỉ phép năm có lương.", "echoes the question", "vi"),
        ("Câu trả lời: 20 ngày nghỉ phép năm [1].", "template opening", "vi"),
    ],
)  # fmt: skip
def test_a_degenerate_sentence_is_rejected_outright(
    embedder: Embedder, text: str, reason: str, language: str
) -> None:
    question = QUESTION_VI if language == "vi" else QUESTION
    assert reason in reasons(embedder, text, question=question, language=language)


def test_a_sentence_said_twice_is_repetition(embedder: Embedder) -> None:
    sentence = "Full-time employees receive 20 days of paid annual leave per calendar year [1]."
    report = check(embedder, f"{sentence} {sentence}")
    assert [s.reasons for s in report.sentences] == [[], ["repetition"]]
    assert report.status == "partly supported"


def test_a_last_list_item_without_a_full_stop_ends_when_the_model_stopped_by_itself(
    embedder: Embedder,
) -> None:
    text = "Full-time employees receive 20 days of paid annual leave per calendar year [1]:\n- Leave accrues monthly [1]"
    stopped = support_check(
        text=text, question=QUESTION, language="en", sources=SOURCES, embed=embedder.embed_documents
    )
    cut_off = support_check(
        text=text,
        question=QUESTION,
        language="en",
        sources=SOURCES,
        embed=embedder.embed_documents,
        complete=False,
    )
    assert "no sentence end" not in stopped.sentences[-1].reasons
    assert "no sentence end" in cut_off.sentences[-1].reasons


# --- Vietnamese over English policy ----------------------------------------------------------------


def test_a_vietnamese_restatement_is_supported_and_a_wrong_figure_in_it_flagged(embedder: Embedder) -> None:
    honest = "Nhân viên toàn thời gian được 20 ngày nghỉ phép năm có lương mỗi năm [1]."
    assert reasons(embedder, honest, question=QUESTION_VI, language="vi") == []
    wrong = "Nhân viên toàn thời gian được 25 ngày nghỉ phép năm có lương mỗi năm [1]."
    assert "unsupported claim: 25 ngày" in reasons(embedder, wrong, question=QUESTION_VI, language="vi")


def test_an_english_policy_sentence_answering_a_vietnamese_question_is_not_the_wrong_language(
    embedder: Embedder,
) -> None:
    text = "Full-time employees receive 20 days of paid annual leave per calendar year [1]."
    assert reasons(embedder, text, question=QUESTION_VI, language="vi") == []


# --- the report -------------------------------------------------------------------------------------


def test_a_heading_and_a_decline_claim_nothing_and_are_not_checked(embedder: Embedder) -> None:
    text = "**Annual leave**\nThe policies I was given do not cover parking.\nLeave accrues monthly [1]."
    report = check(embedder, text)
    assert [s.neutral for s in report.sentences] == [True, True, False]
    assert report.status == "verified" and len(report.checked) == 1


def test_the_status_says_how_much_is_supported(embedder: Embedder) -> None:
    good = "Full-time employees receive 20 days of paid annual leave per calendar year [1]."
    bad = "Full-time employees receive 30 days of paid annual leave per calendar year [1]."
    assert check(embedder, good).status == "verified"
    partly = check(embedder, f"{good} {bad} {bad.replace('30', '40')}")
    assert partly.status == "partly supported" and partly.unsupported_share > 0.5
    assert check(embedder, bad).status == "unsupported"


def test_sentences_keep_their_offsets_and_markers_join_the_sentence_before() -> None:
    text = "Leave accrues monthly. [1] Up to five days carry over [1]."
    assert [text[a:b] for a, b in text_sentences(text)] == [
        "Leave accrues monthly. [1]",
        "Up to five days carry over [1].",
    ]


def test_a_marker_closing_a_line_covers_the_sentences_before_it_on_that_line(embedder: Embedder) -> None:
    # The address is in passage 1 but not among its quotes: only the marker makes it checkable.
    assert (
        check(embedder, "Questions go to people@kestrel.example. Leave accrues monthly [1].").status
        == "verified"
    )
    report = check(embedder, "Questions go to people@kestrel.example.\nLeave accrues monthly [1].")
    assert report.sentences[0].reasons == ["unsupported claim: people@kestrel.example"]


def test_a_piece_ending_in_a_comma_runs_on_into_the_next() -> None:
    text = "According to the policy, * Leave accrues monthly [1]."
    assert [text[a:b] for a, b in text_sentences(text)] == [text]


def test_a_policy_sentence_that_its_passage_cuts_off_may_be_quoted_as_it_stands(embedder: Embedder) -> None:
    cut = "For additional information about the leave program, please refer to the"
    sources = [Source(n=1, sentences=(cut,), quoted=(cut,), context="Leave")]
    quoted = support_check(
        text=f"According to the policy, {cut} [1]", question=QUESTION, language="en", sources=sources,
        embed=embedder.embed_documents,
    )  # fmt: skip
    assert quoted.status == "verified"
    own = support_check(
        text="For more, please refer to the [1]", question=QUESTION, language="en", sources=sources,
        embed=embedder.embed_documents,
    )  # fmt: skip
    assert "no sentence end" in own.sentences[0].reasons


def test_a_passage_given_whole_is_checked_by_its_sentences_and_quotes_by_the_quotes() -> None:
    whole = passage_source(n=1, text=" ".join(LEAVE), quoted=LEAVE[:1], context="", whole=True)
    quotes = passage_source(n=1, text=" ".join(LEAVE), quoted=LEAVE[:1], context="", whole=False)
    assert whole.sentences == LEAVE and quotes.sentences == LEAVE[:1]
