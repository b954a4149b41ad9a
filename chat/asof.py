"""Which day a question asks about: "what was the per diem in March 2025?", "trước ngày 1/7 thì…",
"last year", "next month". The day decides which policy versions answer (rag.selectors.IN_EFFECT).

A question that names no time is about today (the company's, core/clock.py). Date expressions
are found by their shape (a month and year, a numeric date, a relative phrase such as "last
year" or "tháng trước"; bare numbers such as "8 năm" or "ten days" are durations, not dates) and
read by dateparser, in English and Vietnamese. A month or a year is one day of it (the 15th; 1
July), "before" a period is its eve and "after" or "since" one is its last day, so a change made
during that month is included. Whatever was not a single explicit day is said in the answer
("“March 2025” read as 15 March 2025").
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from core.clock import company_today

MONTHS = r"(?:january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)"
YEAR = r"(?:19|20)\d{2}"
QUALIFIER_EN = r"(?:(?:early|mid|late|the (?:start|beginning|middle|end) of)[- ](?:in )?)"
QUALIFIER_VI = r"(?:(?:dau|giua|cuoi) )"
SEASON = r"(?:spring|summer|autumn|fall|winter)"
NUMBER_WORDS = r"(?:\d{1,2}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|twelve)"
# Matched on the question lower-cased and without diacritics (see `_folded`), so "Thang truoc"
# and "tháng trước" are found alike; each shape is one kind of date expression.
EXPRESSIONS = re.compile(
    "|".join(
        [
            rf"{QUALIFIER_EN}?{MONTHS}\.? \d{{1,2}}(?:st|nd|rd|th)?,? {YEAR}",  # March 5, 2025
            rf"\d{{1,2}}(?:st|nd|rd|th)? (?:of )?{MONTHS},? {YEAR}",  # 5 March 2025
            rf"{QUALIFIER_EN}?{MONTHS},? {YEAR}",  # (mid-)March 2025
            rf"{QUALIFIER_EN}?{SEASON} (?:of )?{YEAR}",  # spring 2025
            rf"{QUALIFIER_EN}{YEAR}",  # early 2025
            rf"(?:(?<=\bin )|(?<=since )|(?<=before )|(?<=after )|(?<=until )|(?<=during )|(?<=from )){YEAR}\b",  # in 2025
            rf"\b{YEAR}-\d{{2}}-\d{{2}}\b",  # 2025-03-05
            r"\b(?:last|next|previous|past) (?:year|month|quarter)\b",
            rf"\b{NUMBER_WORDS} (?:years?|months?|weeks?) ago\b",
            rf"(?:ngay )?\d{{1,2}} thang \d{{1,2}}(?: nam {YEAR})?",  # ngày 1 tháng 7 (năm 2025)
            rf"{QUALIFIER_VI}?thang \d{{1,2}}(?:(?: nam |/){YEAR})?",  # (đầu) tháng 3 (năm 2025), tháng 12/2025
            rf"{QUALIFIER_VI}?nam {YEAR}",  # (giữa) năm 2024
            r"\bnam (?:ngoai|truoc|sau|toi)\b",
            r"\bthang (?:truoc|sau|toi)\b",
            r"\b\d{1,2} (?:nam|thang|tuan) truoc\b",
            rf"(?:ngay )?\b\d{{1,2}}/\d{{1,2}}(?:/{YEAR})?\b(?!/)",  # 1/7, 1/12/2025
        ]
    )
)
BEFORE = re.compile(r"\b(?:before|prior to|until|up to|truoc(?: khi| ngay| lan)?)\s+(?:\S+\s+){0,6}$")
AFTER = re.compile(
    r"\b(?:after|since|from|starting(?: in| from)?|once|as of|(?:sau|tu|ke tu)(?: khi| ngay)?)\s+(?:\S+\s+){0,6}$"
    r"|\b(?:change[sd]?|changing|update[sd]?|updated|thay doi|doi)\s+(?:\S+\s+){0,2}$"
)
# Words that say "today" ask about no topic; they are not searched either.
NOW_WORDS = re.compile(r"(?i)\b(?:right now|currently|at present|nowadays|hiện nay|hiện tại|bây giờ)\b")
# The words that only introduce a date ("in March 2025", "hồi tháng 3"): taken out with it.
LEAD_IN = re.compile(r"(?i)\b(?:back in|in|on|at|during|hồi|vào)\s*$")
# dateparser knows "năm ngoái" and "tháng sau"; these say the same.
ALIASES = {"nam truoc": "năm ngoái", "nam toi": "năm sau", "thang toi": "tháng sau"}
EARLY, MIDDLE, LATE = "early", "mid", "late"
QUALIFIERS = {
    "early": EARLY, "the start of": EARLY, "the beginning of": EARLY, "dau": EARLY,
    "mid": MIDDLE, "the middle of": MIDDLE, "giua": MIDDLE,
    "late": LATE, "the end of": LATE, "cuoi": LATE,
}  # fmt: skip
SEASON_DAYS = {"winter": (1, 15), "spring": (4, 15), "summer": (7, 15), "autumn": (10, 15), "fall": (10, 15)}


@dataclass(frozen=True)
class AsOf:
    """The day a question is answered for. `expression` is how the question put it ("" when it
    named no time); `interpreted` says how a period or a partial date was read."""

    day: date
    today: date
    expression: str = ""
    interpreted: bool = False
    start: int = 0
    end: int = 0

    @property
    def is_today(self) -> bool:
        return self.day == self.today

    def question_without_date(self, question: str) -> str:
        """The question with its date expression taken out, for retrieval: the date chooses
        versions; its words ("March", "2025") would only pull in passages that mention them."""
        if not self.expression:
            return " ".join(NOW_WORDS.sub("", question).split()).lstrip(", ") or question
        head = LEAD_IN.sub("", question[: self.start])
        rest = (head + question[self.end :]).strip(" ,")
        return " ".join(rest.split()) or question


def question_as_of(question: str, *, language: str = "en", today: date | None = None) -> AsOf:
    """The day `question` asks about; today when it names none (or names today)."""
    today = today or company_today()
    folded = _folded(question)
    for match in EXPRESSIONS.finditer(folded):
        resolved = _resolve(question, folded, match, language=language, today=today)
        if resolved is not None:
            return resolved
    return AsOf(day=today, today=today)


def _resolve(question: str, folded: str, match: re.Match[str], *, language: str, today: date) -> AsOf | None:
    text = question[match.start() : match.end()]
    folded_text = match.group(0)
    qualifier, body = _qualifier(text, folded_text)
    parsed = _parse(body, language=language, today=today)
    if parsed is None:
        return None
    day, period = parsed
    season = next((s for s in SEASON_DAYS if s in folded_text), None)
    direction = _direction(folded[: match.start()])
    relative_count = re.search(
        r"\d|\b(?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|twelve)\b.*ago|truoc", folded_text
    )
    if (
        period == "year"
        and relative_count
        and ("ago" in folded_text or re.search(r"\d+ nam truoc", folded_text))
    ):
        period = "day"  # "a year ago", "2 năm trước": that very day
    asked = _within(day, period, qualifier=qualifier, season=season, direction=direction)
    if asked is None:
        return None
    exact = period == "day" and bool(re.search(YEAR, folded_text)) and direction == "at"
    return AsOf(
        day=asked,
        today=today,
        expression=text.strip(),
        interpreted=not exact,
        start=match.start(),
        end=match.end(),
    )


def _qualifier(text: str, folded_text: str) -> tuple[str | None, str]:
    for words, qualifier in QUALIFIERS.items():
        if folded_text.startswith(words):
            body = text[len(words) :].lstrip(" -")
            return qualifier, re.sub(r"^in\s+", "", body)
    return None, text


def _parse(text: str, *, language: str, today: date) -> tuple[date, str] | None:
    """dateparser's reading of `text`: the day and its period ("day", "month" or "year")."""
    from dateparser.date import DateDataParser

    text = ALIASES.get(_folded(text), text)
    for season in SEASON_DAYS:  # dateparser reads no seasons: "spring 2025" is its year
        text = re.sub(rf"(?i)\b{season}\b(?: of)?", "", text).strip()
    language = language if language in ("en", "vi") else "en"
    parser = DateDataParser(
        # Both, the question's first: a Vietnamese question typed without diacritics ("thang
        # truoc") is often detected as English.
        languages=[language, "vi" if language == "en" else "en"],
        settings={
            "RELATIVE_BASE": datetime.combine(today, datetime.min.time()),
            # Vietnamese writes day/month; English questions here follow the US handbook's month/day.
            "DATE_ORDER": "DMY" if language == "vi" else "MDY",
            "PREFER_DATES_FROM": "current_period",
        },
    )
    data = parser.get_date_data(text)
    if data.date_obj is None:
        return None
    return data.date_obj.date(), data.period or "day"


def _direction(before_text: str) -> str:
    clause = re.split(r"[,.;?!]", before_text)[-1] + " "
    if BEFORE.search(clause):
        return "before"
    if AFTER.search(clause):
        return "after"
    return "at"


def _within(
    day: date, period: str, *, qualifier: str | None, season: str | None, direction: str
) -> date | None:
    if period == "month":
        first = day.replace(day=1)
        last = day.replace(day=calendar.monthrange(day.year, day.month)[1])
        middle = first.replace(day={EARLY: 5, LATE: 25}.get(qualifier or "", 15))
    elif period == "year":
        first, last = date(day.year, 1, 1), date(day.year, 12, 31)
        if season:
            month, dom = SEASON_DAYS[season]
            middle = date(day.year, month, dom)
        else:
            middle = {EARLY: date(day.year, 2, 15), LATE: date(day.year, 11, 15)}.get(
                qualifier or "", date(day.year, 7, 1)
            )
    else:
        first = last = middle = day
    if direction == "before":
        return first - timedelta(days=1)
    if direction == "after":
        return last
    return middle


def _folded(text: str) -> str:
    """Lower case without diacritics, one character for one (offsets stay valid)."""
    return "".join(_fold_char(c) for c in text.lower())


def _fold_char(char: str) -> str:
    if char == "đ":
        return "d"
    base = unicodedata.normalize("NFD", char)[0]
    return base if base.isascii() else char


# --- what the answer says ---------------------------------------------------------------------

HEADERS = {
    "en": "**As of {day}:** answered from the policy versions in effect on that date{reading}.",
    "vi": "**Tính đến ngày {day}:** câu trả lời dựa trên các phiên bản chính sách có hiệu lực vào ngày đó{reading}.",
}
READINGS = {"en": " (“{expression}” read as {day})", "vi": " (“{expression}” được hiểu là ngày {day})"}
SCHEDULED_LINES = {
    "en": "A new version takes effect on {day}: [{title} v{version}]({url}).",
    "vi": "Một phiên bản mới có hiệu lực từ ngày {day}: [{title} phiên bản {version}]({url}).",
}
REVIEW_LINES = {
    "en": "This policy was due for review on {day}.",
    "vi": "Chính sách này đã đến hạn rà soát vào ngày {day}.",
}


def spoken_day(day: date, language: str) -> str:
    if language == "vi":
        return f"{day.day:02d}/{day.month:02d}/{day.year}"
    return f"{day.day} {calendar.month_name[day.month]} {day.year}"


def as_of_header(as_of: AsOf, language: str) -> str:
    """The answer's first line for a question about another day, in the question's language."""
    language = language if language in HEADERS else "en"
    day = spoken_day(as_of.day, language)
    reading = (
        READINGS[language].format(expression=as_of.expression, day=day)
        if as_of.interpreted and as_of.expression
        else ""
    )
    return HEADERS[language].format(day=day, reading=reading)


def localised(lines: dict[str, str], language: str) -> str:
    return lines.get(language, lines["en"])
