"""A Vietnamese → English glossary of workplace-policy words, for Vietnamese questions over English
policies.

multilingual-e5-small places a Vietnamese question near the English passage that answers it
often, not always: on the handbook it found the right page in the top five for two Vietnamese
questions in three, against nine English ones in ten. Policy questions turn on a few domain
words ("mật khẩu" → password, "hoàn tiền" → reimbursement), so retrieval adds, for a Vietnamese
question, the English words of the phrases it contains: to the question's embedding (the mean of
both) and to its full-text query, where they meet English stemming.

Phrases are matched without diacritics and longest first, so "nghi phep nam" finds the same
entry as "nghỉ phép năm". Entries are general HR, IT-security, travel and finance vocabulary,
not the wording of any one document.
"""

from __future__ import annotations

import re
from functools import lru_cache

from privacy.language import fold

VI_EN: dict[str, str] = {
    # leave and time off
    "nghỉ phép năm": "annual leave",
    "nghỉ phép": "leave",
    "ngày phép": "leave days",
    "nghỉ ốm": "sick leave",
    "nghỉ bệnh": "sick leave",
    "nghỉ không lương": "unpaid leave",
    "nghỉ có lương": "paid leave",
    "nghỉ thai sản": "parental maternity leave",
    "sinh con": "birth baby parental",
    "nghỉ lễ": "holiday",
    "ngày lễ": "holiday",
    "vắng mặt": "absence out of office",
    "bị bệnh": "illness sick",
    "bệnh nặng": "serious health condition",
    "sức khỏe": "health",
    "y tế": "medical",
    "làm thêm giờ": "overtime",
    "ngoài giờ": "overtime after hours",
    "giờ làm việc": "work hours schedule",
    "lịch làm việc": "work schedule",
    "chấm công": "timesheet time tracking",
    "bảng chấm công": "timesheet",
    # pay and benefits
    "lương": "salary pay",
    "thu nhập": "income salary",
    "phúc lợi": "benefits",
    "bảo hiểm": "insurance",
    "phụ cấp": "allowance subsidy",
    "trợ cấp": "allowance benefit",
    "hỗ trợ chi phí": "subsidy benefit",
    "thưởng": "award bonus",
    "hoàn tiền": "reimbursement",
    "hoàn trả": "reimbursement",
    "thanh toán": "payment reimbursement",
    "chi phí": "expenses costs",
    "hóa đơn": "receipt invoice",
    "mua sắm": "purchase",
    "giấy phép phần mềm": "software license",
    "phần mềm": "software",
    "ngân sách": "budget",
    # travel
    "công tác": "business travel trip",
    "đi công tác": "business travel",
    "du lịch": "travel trip vacation",
    "chuyến đi": "trip travel",
    "vé máy bay": "flight airfare",
    "khách sạn": "hotel lodging",
    "thẻ tín dụng": "credit card travel card",
    "phương tiện công cộng": "public transit",
    "đi làm": "commute",
    "chuyển nhà": "relocation moving",
    "chuyển công tác": "relocation transfer",
    "ủy quyền": "authorization",
    "phê duyệt": "approval approve",
    "khẩn cấp": "emergency",
    # identity, access, equipment
    "thẻ nhân viên": "badge",
    "thẻ ra vào": "badge PIV card access",
    "tòa nhà": "building",
    "máy tính xách tay": "laptop",
    "máy tính": "computer laptop",
    "thiết bị": "equipment device",
    "điện thoại": "phone",
    "mật khẩu": "password",
    "ký tự": "characters",
    "tài khoản": "account",
    "đăng nhập": "sign in login",
    "truy cập": "access",
    # security and records
    "bảo mật": "security",
    "an ninh": "security clearance",
    "lỗ hổng": "vulnerability",
    "lỗ hổng bảo mật": "security vulnerability",
    "công khai": "public disclosure",
    "sự cố": "incident",
    "mã độc": "malware compromised",
    "bị nhiễm": "infected compromised",
    "bị hack": "compromised hacked",
    "thông tin nhạy cảm": "sensitive information",
    "nhạy cảm": "sensitive",
    "dữ liệu cá nhân": "personal data privacy",
    "quyền riêng tư": "privacy",
    "hồ sơ": "records",
    "lưu trữ": "retention records",
    "email": "email",
    "mã nguồn mở": "open source",
    "mã nguồn": "source code",
    # documents and tools
    "tài liệu": "document",
    "chữ ký": "signature",
    "ký điện tử": "electronic signature sign",
    "chữ ký điện tử": "digital signature",
    "ký số": "digital signature",
    "biểu mẫu": "form",
    "họp trực tuyến": "video meeting",
    "cuộc họp": "meeting",
    "lịch": "calendar",
    "chia sẻ": "share",
    # people and career
    "nhân viên": "employee staff",
    "đồng nghiệp": "colleague coworker",
    "quản lý": "manager supervisor",
    "người giám sát": "supervisor",
    "khuyết tật": "disability accommodation",
    "hỗ trợ": "support assistance",
    "cựu chiến binh": "veterans",
    "khiếm thính": "deaf hard of hearing",
    "đánh giá hiệu suất": "performance review",
    "đánh giá": "review evaluation",
    "phản hồi": "feedback",
    "xung đột": "conflict",
    "đào tạo": "training",
    "khóa học": "course training class",
    "hội nghị": "conference",
    "sự kiện": "event",
    "diễn giả": "speaker",
    "phát triển cá nhân": "individual development plan",
    "kế hoạch": "plan",
    "tuyển dụng": "hiring recruitment",
    "nghỉ việc": "leaving resign separation",
    "xác nhận việc làm": "employment verification",
    "xác nhận": "verification confirm",
    "ngân hàng": "bank lender",
    "làm việc từ xa": "remote work telework",
    "làm việc tại nhà": "work from home telework",
    "văn phòng": "office",
    "quà tặng": "gift",
    "quà": "gift",
    "nhà cung cấp": "supplier vendor",
    "đối tác": "partner",
    "xung đột lợi ích": "conflict of interest",
    "quy tắc ứng xử": "code of conduct",
    "quấy rối": "harassment",
    "báo cáo": "report",
    "dự án": "project",
    "hàng tuần": "weekly",
    "hằng tuần": "weekly",
    "tối thiểu": "minimum",
    "tối đa": "maximum",
    # time, quantities and leave bookkeeping (added with the answer evaluation: words the
    # dev questions used that the glossary lacked; general vocabulary, not any page's wording)
    "giờ": "hours",
    "ngày": "days",
    "tuần": "weeks",
    "kỳ lương": "pay period",
    "ứng trước": "advanced",
    "chuyển sang năm sau": "carry over next year",
    "tích lũy": "accrue accrued",
    "hết hạn": "expire expires",
    "mẫu đơn": "form",
    "đơn xin": "request form",
    "tín chỉ": "credit",
    "giờ bù": "comp time",
    "nhà tuyển dụng": "employer",
    "phiếu thanh toán": "voucher",
    "xem xét": "review reviewed",
    "danh thiếp": "business cards",
}


@lru_cache(maxsize=1)
def _pattern() -> tuple[re.Pattern[str], dict[str, str]]:
    folded = {fold(vi): en for vi, en in VI_EN.items()}
    # Longest first, so "nghi phep nam" wins over "nghi phep"; whole syllables only.
    alternatives = sorted(folded, key=len, reverse=True)
    pattern = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, alternatives)) + r")(?!\w)")
    return pattern, folded


# Acronyms and product names a Vietnamese question borrows as they are (PIV, VPN, IDP, Slack).
_LATIN_NAME = re.compile(r"\b(?:[A-Z][A-Z0-9]{1,9}|[A-Z][a-z]+[A-Z]\w*)\b")


def english_terms(text: str) -> str:
    """The English words of the glossary phrases in `text` and the acronyms it borrows, in
    order, each once ("" if none)."""
    pattern, folded = _pattern()
    words: list[str] = [m.group(0) for m in _LATIN_NAME.finditer(text)]
    for match in pattern.finditer(fold(text)):
        words.extend(folded[match.group(1)].split())
    return " ".join(dict.fromkeys(words))
