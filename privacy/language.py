"""Which language a message is in: English or Vietnamese, the two our users write.

Redaction picks its NER by it (English NER reads capitalised Vietnamese syllables as names) and
retrieval picks the full-text configuration by it (rag/selectors.py).
"""

from __future__ import annotations

import re

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
    """'vi' when Vietnamese-only letters make up a noticeable share of the words, else 'en'."""
    words = max(1, len(text.split()))
    marked = len(_VIETNAMESE_LETTERS.findall(text))
    return "vi" if marked >= 2 and marked / words >= 0.15 else "en"


def looks_vietnamese(text: str) -> bool:
    """Vietnamese with or without diacritics ("nghi phep nam duoc bao nhieu ngay")."""
    if detect_language(text) == "vi":
        return True
    words = [w.lower() for w in _WORD.findall(text)]
    known = sum(w in _UNACCENTED_SYLLABLES for w in words)
    return known >= 2 and known / max(1, len(words)) >= 0.4
