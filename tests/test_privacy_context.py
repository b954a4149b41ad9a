"""The context recognizers on messages written the way people type (none of these sentences is in
the evaluation sets), and the answer-side rules: document text kept, the asker's own values
restored on their socket only."""

from __future__ import annotations

import pytest

from privacy.services import (
    PlaceholderVault,
    placeholders_restore,
    placeholders_restore_html,
    text_redact,
)


def redacted(text: str) -> str:
    return text_redact(text=text).text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("please loop in natalie hughes on this", "natalie hughes"),
        ("CHRISTOPHER LANG approved it already", "CHRISTOPHER LANG"),
        ("cc Moreau, Julien on the reply", "Moreau, Julien"),
        ("toi la le van tam, phong ky thuat", "le van tam"),
        ("chi nguyen thu ha gui email roi", "nguyen thu ha"),
        ("Hôm qua ANH ĐẶNG VĂN LONG đã nộp đơn.", "ĐẶNG VĂN LONG"),
        ("Tôi đã hỏi chị Trương Ngọc Ánh ở phòng nhân sự.", "Trương Ngọc Ánh"),
    ],
)
def test_names_in_any_case_with_or_without_diacritics_are_redacted(text: str, value: str) -> None:
    assert value not in redacted(text)


@pytest.mark.parametrize(
    "text",
    [
        "Nguyên nhân nghỉ việc phải ghi trong đơn không?",
        "Văn phòng Thành phố Hồ Chí Minh ở quận mấy?",
        "Tôi đang điều trị ở bệnh viện đường Trần Hưng Đạo, có cần giấy không?",
        "may i take leave in june to visit the grace period office?",
        "How many days of annual leave do I get?",
    ],
)
def test_policy_words_that_look_like_names_are_left_alone(text: str) -> None:
    assert "PERSON" not in redacted(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("my staff ID is QX-55012, the portal rejects it", "QX-55012"),
        ("Mã nhân viên: 88123-B của tôi bị sai", "88123-B"),
        ("badge no. 20-7718 stopped opening the door", "20-7718"),
        ("ma nhan vien cua toi la 9981-22", "9981-22"),
    ],
)
def test_an_employee_id_is_found_by_the_words_before_it_whatever_its_format(text: str, value: str) -> None:
    assert value not in redacted(text)
    assert "<EMPLOYEE_ID_1>" in redacted(text)


def test_a_short_number_after_badge_is_not_an_employee_id() -> None:
    assert redacted("Which badge 123 door is open on Sunday?") == "Which badge 123 door is open on Sunday?"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("My brother was diagnosed with leukemia last month.", "leukemia"),
        ("Since my hip replacement I cannot climb stairs.", "hip replacement"),
        ("Chồng tôi bị viêm phổi, tôi xin nghỉ chăm sóc.", "viêm phổi"),
        ("toi bi tieu duong type 2", "tieu duong"),
        ("Olivia Grant has severe migraines on Mondays.", "migraines"),
    ],
)
def test_health_data_about_a_person_is_redacted(text: str, value: str) -> None:
    assert value not in redacted(text)
    assert "<MEDICAL_CONDITION_1>" in redacted(text)


@pytest.mark.parametrize(
    "text",
    [
        "Does the policy cover leukemia treatment?",
        "Chính sách có chi trả khi bị viêm phổi không?",
        "Is IVF treatment covered by paid leave?",
    ],
)
def test_health_words_in_a_policy_question_are_left_alone(text: str) -> None:
    assert redacted(text) == text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (
            "Tôi ở 42 đường Hoàng Diệu, phường 12, quận 4, gửi đồ giúp.",
            "42 đường Hoàng Diệu, phường 12, quận 4",
        ),
        ("Nhà tôi: 3/7 Pasteur, P. Võ Thị Sáu, Q.3", "3/7 Pasteur, P. Võ Thị Sáu, Q.3"),
        ("Quê tôi ở xã Yên Sở, huyện Hoài Đức.", "xã Yên Sở, huyện Hoài Đức"),
        ("My flat is 17 Via Roma in Milan.", "17 Via Roma"),
    ],
)
def test_home_addresses_are_redacted(text: str, value: str) -> None:
    assert value not in redacted(text)


def test_an_office_district_is_not_a_home_address() -> None:
    assert redacted("Văn phòng ở quận 1 mở cửa lúc mấy giờ?") == "Văn phòng ở quận 1 mở cửa lúc mấy giờ?"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Ngày sinh 7 tháng 9 năm 1994, xin cập nhật hồ sơ.", "7 tháng 9 năm 1994"),
        ("Em sinh năm 1988 thì được nghỉ hưu năm nào?", "1988"),
        ("sinh ngày 21/10/1979", "21/10/1979"),
    ],
)
def test_vietnamese_birth_dates_are_redacted(text: str, value: str) -> None:
    assert value not in redacted(text)


ANSWER_PASSAGE = (
    "Send the Outside Speaker Request form to helpdesk@kestrel.example; the IT Service Desk answers "
    "within a day."
)


def test_an_answer_keeps_the_policy_text_it_quotes_and_redacts_what_the_model_made_up() -> None:
    answer = (
        "Fill in the Outside Speaker Request form and send it to helpdesk@kestrel.example [1]. "
        "You could also write to rita.invented@kestrel.example."
    )
    result = text_redact(text=answer, documents=[ANSWER_PASSAGE])
    assert "helpdesk@kestrel.example" in result.text
    assert "rita.invented@kestrel.example" not in result.text
    assert result.kept_as_document >= 1


def test_a_quoted_address_the_user_typed_as_their_own_is_still_redacted() -> None:
    vault = PlaceholderVault(scope="conversation")
    question = text_redact(text="My own address is helpdesk@kestrel.example, is that allowed?", vault=vault)
    assert "helpdesk@kestrel.example" not in question.text
    answer = text_redact(
        text="Write to helpdesk@kestrel.example [1].", vault=vault, documents=[ANSWER_PASSAGE]
    )
    assert answer.text == "Write to <EMAIL_ADDRESS_1> [1]." and answer.kept_as_document == 0


def test_placeholders_are_restored_only_from_the_mapping_given_and_escaped_in_html() -> None:
    question = text_redact(text="I am Margaret <b>Thornbury and my id is EMP-123456.")
    assert question.restorations and "Margaret" not in repr(question)
    mapping = {"<PERSON_1>": "Anna <b>", "<EMPLOYEE_ID_1>": "EMP-123456"}
    assert (
        placeholders_restore(text="Hi <PERSON_1>, <PERSON_2>", restorations=mapping)
        == "Hi Anna <b>, <PERSON_2>"
    )
    html = "<p>Hi &lt;PERSON_1&gt; and &lt;EMPLOYEE_ID_1>, not &lt;PERSON_2&gt;</p>"
    assert placeholders_restore_html(html=html, restorations=mapping) == (
        "<p>Hi Anna &lt;b&gt; and EMP-123456, not &lt;PERSON_2&gt;</p>"
    )
