"""Which day a question asks about, in English and Vietnamese (chat/asof.py, with dateparser),
and how the answer says so. Today is fixed: 15 October 2026."""

from __future__ import annotations

from datetime import date

import pytest

from chat.asof import as_of_header, question_as_of

TODAY = date(2026, 10, 15)


@pytest.mark.parametrize(
    ("question", "language", "day", "expression"),
    [
        ("In March 2025, what was the maximum advanced sick leave?", "en", date(2025, 3, 15), "March 2025"),
        ("Back in mid-May 2025, how fast was a VLTP decision?", "en", date(2025, 5, 15), "mid-May 2025"),
        ("In spring 2025, when did the committee meet?", "en", date(2025, 4, 15), "spring 2025"),
        ("What was the rule last year?", "en", date(2025, 7, 1), "last year"),
        ("A year ago, what was the threshold?", "en", date(2025, 10, 15), "A year ago"),
        ("Next month, above what amount do I need a receipt?", "en", date(2026, 11, 15), "Next month"),
        ("Before the July 2025 change, what was the cap?", "en", date(2025, 6, 30), "July 2025"),
        ("Since the March 2026 update, how quickly do they follow up?", "en", date(2026, 3, 31), "March 2026"),
        ("Hồi tháng 3 năm 2025, báo cáo chấm công phải gồm gì?", "vi", date(2025, 3, 15), "tháng 3 năm 2025"),
        ("Vào tháng 12/2025, báo cáo phải bao quát bao nhiêu tháng?", "vi", date(2025, 12, 15), "tháng 12/2025"),
        ("Năm ngoái mức lương tối đa là bao nhiêu?", "vi", date(2025, 7, 1), "Năm ngoái"),
        ("Thang truoc, ho so y te phai nop trong bao lau?", "vi", date(2026, 9, 15), "Thang truoc"),
        ("Đầu năm 2025, xử lý biệt phái mất bao lâu?", "vi", date(2025, 2, 15), "Đầu năm 2025"),
        ("trước ngày 1/7 thì được nghỉ bao nhiêu ngày?", "vi", date(2026, 6, 30), "ngày 1/7"),
        ("Trước khi quy định thay đổi vào ngày 1/12/2025, HR trả lời trong bao lâu?", "vi", date(2025, 11, 30), "ngày 1/12/2025"),
        ("Sau khi quy định thay đổi vào tháng 5/2025, hạn nộp là bao nhiêu ngày?", "vi", date(2025, 5, 31), "tháng 5/2025"),
    ],
)  # fmt: skip
def test_a_date_in_the_question_sets_the_day_it_is_answered_for(
    question: str, language: str, day: date, expression: str
) -> None:
    as_of = question_as_of(question, language=language, today=TODAY)
    assert (as_of.day, as_of.expression) == (day, expression)
    assert not as_of.is_today and as_of.interpreted


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("How many hours of advanced sick leave can I request?", "en"),
        ("Right now, how many nights must a trip last before laundry is paid?", "en"),
        ("What cost decides whether a request needs ten days to two weeks of lead time?", "en"),
        ("Cách chia nhiệm kỳ tiêu chuẩn cho một bổ nhiệm 8 năm là như thế nào?", "vi"),
        ("Hiện nay, chi phí trên bao nhiêu tiền mới phải giữ hóa đơn?", "vi"),
        ("Which day of the week does GSA process new PIV badges?", "en"),
    ],
)
def test_durations_and_words_for_now_leave_the_question_about_today(question: str, language: str) -> None:
    as_of = question_as_of(question, language=language, today=TODAY)
    assert as_of.is_today and as_of.expression == ""


def test_an_exact_date_is_not_called_an_interpretation() -> None:
    written = question_as_of("What was the per diem on July 3, 2025?", today=TODAY)
    assert (written.day, written.expression, written.interpreted) == (date(2025, 7, 3), "July 3, 2025", False)
    as_of = question_as_of("What applied on 2025-03-05?", today=TODAY)
    assert as_of.day == date(2025, 3, 5) and not as_of.interpreted
    assert as_of_header(as_of, "en") == (
        "**As of 5 March 2025:** answered from the policy versions in effect on that date."
    )


def test_the_header_is_in_the_questions_language_and_states_the_reading() -> None:
    as_of = question_as_of("Năm ngoái mức lương tối đa là bao nhiêu?", language="vi", today=TODAY)
    assert as_of_header(as_of, "vi") == (
        "**Tính đến ngày 01/07/2025:** câu trả lời dựa trên các phiên bản chính sách có hiệu lực vào ngày đó "
        "(“Năm ngoái” được hiểu là ngày 01/07/2025)."
    )


def test_retrieval_searches_the_question_without_its_date() -> None:
    question = "In March 2025, what was the maximum advanced sick leave?"
    as_of = question_as_of(question, today=TODAY)
    assert as_of.question_without_date(question) == "what was the maximum advanced sick leave?"


def test_words_for_now_are_not_searched() -> None:
    question = "Hiện nay, khi đi công tác thì chi phí trên bao nhiêu phải giữ hóa đơn?"
    as_of = question_as_of(question, language="vi", today=TODAY)
    assert (
        as_of.question_without_date(question)
        == "khi đi công tác thì chi phí trên bao nhiêu phải giữ hóa đơn?"
    )
