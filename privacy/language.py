"""Which language a message is in: English or Vietnamese, the two our users write.

Redaction picks its NER by it (English NER reads capitalised Vietnamese syllables as names) and
retrieval picks the full-text configuration by it (rag/selectors.py).
"""

from __future__ import annotations

import re
import unicodedata

# Letters that only Vietnamese (among the languages our users write) puts on Latin script.
_VIETNAMESE_LETTERS = re.compile(
    "[ăâđêôơưĂÂĐÊÔƠƯ"
    "àảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ"
    "ÀẢÃÁẠẰẲẴẮẶẦẨẪẤẬÈẺẼÉẸỀỂỄẾỆÌỈĨÍỊÒỎÕÓỌỒỔỖỐỘỜỞỠỚỢÙỦŨÚỤỪỬỮỨỰỲỶỸÝỴ]"
)
# Frequent Vietnamese syllables as people type them without diacritics, leaving out those that
# are also common English words ("the", "to", "do", "an", "me", "by", "in", "on").
_UNACCENTED_SYLLABLES = frozenset(
    [
        "bao",
        "bay",
        "bi",
        "cac",
        "cach",
        "chinh",
        "cho",
        "chua",
        "co",
        "cong",
        "cua",
        "cuoc",
        "dang",
        "den",
        "dieu",
        "dinh",
        "duoc",
        "gi",
        "gian",
        "gio",
        "giup",
        "hay",
        "hoac",
        "hop",
        "khi",
        "khong",
        "kia",
        "lam",
        "lan",
        "luong",
        "mat",
        "minh",
        "moi",
        "mot",
        "nam",
        "nao",
        "neu",
        "ngay",
        "nghi",
        "nguoi",
        "nhan",
        "nhieu",
        "nhu",
        "nhung",
        "phai",
        "phep",
        "phong",
        "phu",
        "quy",
        "sach",
        "sao",
        "sau",
        "sinh",
        "tai",
        "thang",
        "thanh",
        "thi",
        "thoi",
        "toi",
        "tren",
        "truoc",
        "tu",
        "tuan",
        "uong",
        "va",
        "vao",
        "ve",
        "viec",
        "vien",
        "voi",
        "xa",
        "xin",
    ]
)
_WORD = re.compile(r"[^\W\d_]+")


def detect_language(text: str) -> str:
    """'vi' for Vietnamese, with or without diacritics ("nghi phep nam duoc bao nhieu ngay"),
    else 'en'. Vietnamese-only letters making up a noticeable share of the words, or frequent
    unaccented syllables making up much of the message."""
    words = max(1, len(text.split()))
    marked = len(_VIETNAMESE_LETTERS.findall(text))
    if marked >= 2 and marked / words >= 0.15:
        return "vi"
    syllables = [w.lower() for w in _WORD.findall(text)]
    known = sum(w in _UNACCENTED_SYLLABLES for w in syllables)
    return "vi" if known >= 2 and known / max(1, len(syllables)) >= 0.4 else "en"


def fold(text: str) -> str:
    """Lowercase without diacritics, one character for each of `text`'s: "Nghỉ Phép" and
    "nghi phep" fold alike (đ → d too), and a span found in the folded text is the same span of
    the original. A combining mark (text typed in decomposed form) folds to a space."""
    return "".join(_fold_char(c) for c in text)


def _fold_char(char: str) -> str:
    lowered = char.lower()
    if lowered == "đ":
        return "d"
    if len(lowered) != 1:  # "İ".lower() is two characters
        return char
    base = unicodedata.normalize("NFD", lowered)[0]
    return " " if unicodedata.combining(base) else base
