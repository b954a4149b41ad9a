"""The support check: is each sentence a model wrote backed by one policy sentence it was given?

Pure: no database, no model. The caller passes the policy text the model was given (as
`Source`s, numbered as the answer cites them) and the functions that embed sentences (the
pipeline passes the index's e5 embedder, cached for policy sentences; tests pass the same).

For each sentence of the model's text:
  1. Degeneration is rejected outright, before any alignment: a template opening ("The answer
     is:"), repetition, an echo of the question, no sentence end, a code identifier (snake_case,
     camelCase, func()), a language that is neither the question's nor the policy's.
  2. It is aligned with its best policy sentence: among the sentences of the passages it cites,
     or, citing none, among the quoted evidence; by e5 cosine and shared content words.
  3. That one sentence must hold every figure (number with its unit, date, amount, e-mail, URL,
     form name) the model's sentence states, and in the same role: the words right after the
     number must stand next to the same number in the policy sentence ("2 days for other
     relatives" does not back "2 days when a parent dies").
  4. Polarity must agree: a negation the model wrote must negate the same word in the policy
     sentence, a negation of the policy sentence must not be dropped, "only" must be the policy's.
  5. Names (acronyms, capitalised words) must be the aligned sentence's, or its passage title's
     when none of the sentence's own names was swapped for them.
  6. The cosine must clear a floor and the model's content words must be covered by the policy
     sentence (its passage's title and heading, and the rest of its list, count; inflections
     meet by stem, Vietnamese through the glossary; placeholders such as <PERSON_1> are the
     asker's own). A lead-in fails when every item after it fails.
A sentence that passes all is supported. Thresholds are calibrated on the dev part of the
labelled pairs in bench/golden/support/ (docs/answers-verified.md; `python -m bench.support_eval`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from chat.claims import CITATION, Claim, claim_supported, claims_in, support_index, words_to_digits
from privacy.language import detect_language, fold
from rag.evidence import PLACEHOLDER, STOPWORDS, WORD, sentences_of, stem
from rag.glossary import english_terms

Embed = Callable[[list[str]], Sequence[Sequence[float]]]

# --- thresholds (calibrated on the dev pairs; see the module docstring) ------------------------
# e5 cosine between a model sentence and the policy sentence it restates: unrelated sentences of
# the same handbook sit near 0.78, restatements above 0.88.
MIN_COSINE = 0.88
MIN_COVERAGE = 0.8  # share of the sentence's content words the aligned policy sentence holds
MAX_UNCOVERED = 1  # content words it may add that the policy sentence does not hold
MIN_COSINE_VI = 0.86  # a Vietnamese sentence over English policy: e5 across languages
MIN_COVERAGE_VI = 0.5  # of its glossary words (its own syllables match nothing English)
ALIGN_COSINE_WEIGHT = 0.5  # alignment score: this much cosine (rescaled), the rest word overlap
COSINE_FLOOR, COSINE_SPAN = 0.75, 0.25
# A figure's role: the model's first ROLE_AFTER content words after it must meet the policy's
# first ROLE_AFTER_POLICY after the same figure (or the one just before it); with none after
# it, one of its ROLE_BEFORE words before must be within ROLE_WINDOW_POLICY of it.
ROLE_AFTER, ROLE_BEFORE = 2, 3
ROLE_AFTER_POLICY, ROLE_WINDOW_POLICY = 4, 6
ALIGN_CANDIDATES = 12  # policy sentences embedded per model sentence: the best by word overlap

# --- degeneration ---------------------------------------------------------------------------
TEMPLATE_OPENING = re.compile(
    r"^(?:the\s+)?answer(?:\s+to\s+(?:the|your|this)(?:\s+employee'?s?)?\s+question)?\s*(?:is\b|:|-)|"
    r"^to\s+answer\s+(?:the|your|this|an)\b|"
    r"^(?:here\s+is|here's)\s+(?:the|an|my|your)\s+answer\b|"
    r"^(?:question|policy\s+text|passages?|context|quotes?|in\s+short|summary|tóm\s+tắt|trả\s+lời|câu\s+trả\s+lời)\s*:|"
    r"\bthe\s+employee'?s\s+question\b|"
    r"\b(?:using|use)\s+only\s+the\s+policy\s+text\b|\bcopy\s+numbers\s+exactly\b|"
    r"\bas\s+an\s+ai\b|\bi\s+am\s+policydesk\b",
    re.I,
)
CODE_IDENTIFIER = re.compile(
    r"`[^`\n]+`|\b[A-Za-z_]\w*\(\)|\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b|\b[a-z]+[A-Z][a-z0-9]+[A-Za-z0-9]*\b"
)
OTHER_SCRIPT = re.compile(r"[\u0400-\u04ff\u0590-\u06ff\u0e00-\u0e7f\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
SENTENCE_END = re.compile(r"(?<!\.\.)[.!?。]\s*$")
# A sentence's ending decorations: citation markers, closing quotes and brackets, emphasis.
TRAILING = re.compile(r"(?:\s*\[\d{1,3}\]|[\s\"'\u201d\u2019)*_]+)+$")
LEADING = re.compile(r"^(?:\s*(?:[-*•>]|\d{1,2}[.)]|#+)\s+|\*\*|__)+")
HEADING = re.compile(r"^\s*(?:#{1,6}\s+.+|\*\*[^*]+\*\*:?|__[^_]+__:?)\s*$")

# Phrases by which a generating model declines (its own words, in either language): an answer
# that says so counts as declined, like PolicyDesk's own "not covered" reply.
DECLINE_PHRASES = re.compile(
    r"\b(?:polic(?:y|ies)|passages?|documents?|quotes?|sources?|context)\b[^.]{0,40}?\b"
    r"(?:do(?:es)?n[o']t|do(?:es)? not)\s+(?:cover|address|mention|contain|answer|say anything)|"
    r"\bnot covered (?:by|in) the\b|"
    r"(?:chính sách|tài liệu)[^.]{0,40}?(?:không đề cập|không có thông tin|không quy định)",
    re.I,
)


def declined_in_words(text: str) -> bool:
    return bool(DECLINE_PHRASES.search(text))


# --- polarity -------------------------------------------------------------------------------
# "no later than", "not more than": limits, not negations ("up to" says the same).
LIMIT = re.compile(
    r"\b(?:no|not)\s+(?:later|more|less|fewer|earlier|sooner|longer|greater)\s+than\b|"
    r"(?<!\w)chưa\s+(?:dùng|sử dụng|được dùng)(?!\w)",  # "chưa dùng": unused, not a negation
    re.I,
)
NEGATION = re.compile(
    r"\b(?:not|no|never|none|nor|neither|cannot|without|nobody|nothing)\b|n't\b|"
    r"(?<!\w)(?:không|chưa|chẳng|đừng|cấm)(?!\w)",
    re.I,
)
ONLY = re.compile(r"\b(?:only|solely|exclusively)\b|(?<!\w)chỉ(?!\w)", re.I)
YES_OPENING = re.compile(r"^\W*(?:yes|có|vâng|đúng)\b", re.I)
# Generic words an answer wraps a policy sentence in: they claim nothing of their own.
FRAME_WORDS = frozenset(
    stem(w)
    for w in (
        "according",
        "state",
        "states",
        "stated",
        "say",
        "says",
        "mention",
        "mentions",
        "note",
        "noted",
        "section",
        "passage",
        "handbook",
        "guideline",
        "guidelines",
        "rule",
        "rules",
        "yes",
        "however",
        "therefore",
        "also",
        "generally",
        "usually",
        "typically",
        "follow",
        "following",
        "example",
        "staff",
        "worker",
        "workers",
        "people",
        "person",
    )
)
# Paraphrases an honest restatement uses for a policy word, stemmed: {model word: policy words}.
PARAPHRASES: dict[str, frozenset[str]] = {
    stem(a): frozenset(stem(b) for b in bs)
    for a, bs in {
        "get": ("receive", "earn", "accrue", "obtain"),
        "receive": ("get", "earn", "accrue"),
        "earn": ("accrue", "receive"),
        "accrue": ("earn",),
        "baby": ("birth", "child", "newborn"),
        "maximum": ("up", "cap", "capped", "limit", "most"),
        "limit": ("maximum", "cap", "capped", "up"),
        "submit": ("send", "file", "complete", "fill"),
        "send": ("submit", "email", "forward"),
        "manager": ("supervisor",),
        "supervisor": ("manager",),
        "request": ("ask",),
        "ask": ("request",),
        "use": ("take",),
        "take": ("use",),
        "unused": ("unused", "remaining"),
        "help": ("assist", "assistance", "support"),
        "pay": ("paid",),
        "paid": ("pay",),
    }.items()
}


@dataclass(frozen=True)
class Source:
    """What the model was given under one citation number."""

    n: int
    sentences: tuple[str, ...]  # the passage's sentences: what a sentence citing it may rest on
    quoted: tuple[str, ...] = ()  # its quoted evidence: what an uncited sentence may rest on
    context: str = ""  # the passage's title and heading (its topic words)


@dataclass
class SentenceSupport:
    text: str
    start: int  # offsets into the checked text
    end: int
    cited: list[int]
    neutral: bool = False  # claims nothing about the policy (a heading, a decline)
    aligned: str = ""  # the policy sentence it was aligned with
    aligned_n: int | None = None
    cosine: float = 0.0
    coverage: float = 0.0
    reasons: list[str] = field(default_factory=list)

    @property
    def supported(self) -> bool:
        return self.neutral or not self.reasons

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclass
class SupportReport:
    sentences: list[SentenceSupport]

    @property
    def checked(self) -> list[SentenceSupport]:
        return [s for s in self.sentences if not s.neutral]

    @property
    def flagged(self) -> list[SentenceSupport]:
        return [s for s in self.sentences if not s.supported]

    @property
    def status(self) -> str:
        """verified | partly supported | unsupported ("verified" too when nothing claims anything)."""
        checked = self.checked
        flagged = self.flagged
        if not flagged:
            return "verified"
        return "unsupported" if len(flagged) == len(checked) else "partly supported"

    @property
    def unsupported_share(self) -> float:
        """Share of the checked words in flagged sentences."""
        total = sum(s.words for s in self.checked)
        return sum(s.words for s in self.flagged) / total if total else 0.0

    def reasons(self) -> list[str]:
        return [reason for sentence in self.flagged for reason in sentence.reasons]


# --- words ----------------------------------------------------------------------------------


def _tokens(text: str) -> list[str]:
    return [w for w in WORD.findall(fold(PLACEHOLDER.sub(" ", text).lower()))]


CONTRACTION = re.compile(r"n't$|'(?:s|re|ve|ll|d|m)$")
CONTRACTED = {"can't": "can", "won't": "will", "shan't": "shall"}


def words_of(text: str) -> set[str]:
    """Content words, stemmed, hyphenated words split ("carry-over" → carry), contractions
    opened ("don't" → do), figures left out (they are checked as claims)."""
    words = set()
    for token in _tokens(text):
        token = token.replace("\u2019", "'")
        token = CONTRACTED.get(token) or CONTRACTION.sub("", token)
        for part in token.split("-"):
            if part and part not in STOPWORDS and not part[0].isdigit() and len(part) > 1:
                words.add(stem(part))
    return words


@lru_cache(maxsize=20_000)
def _policy_words(text: str) -> frozenset[str]:
    """A policy sentence's content words, kept: the same sentences come back answer after answer."""
    return frozenset(words_of(text))


def _model_words(text: str, *, vietnamese: bool) -> set[str]:
    """The words of a model sentence to be found in the policy: its English glossary words when
    it is Vietnamese (its own syllables match nothing in an English policy)."""
    if vietnamese:
        latin = " ".join(re.findall(r"\b[A-Z][A-Z0-9]{1,9}\b", text))
        return words_of(english_terms(text)) | words_of(latin)
    return words_of(text) - FRAME_WORDS


def _covered(word: str, policy: set[str] | frozenset[str]) -> bool:
    return word in policy or bool(PARAPHRASES.get(word, frozenset()) & policy)


# --- sentences ------------------------------------------------------------------------------


def text_sentences(text: str) -> list[tuple[int, int]]:
    """The model text's sentences as (start, end) offsets: lines, split at sentence ends.
    Citation markers after a sentence's full stop ("… monthly. [1] Up to …") belong to it; a
    piece ending in a comma ("According to the policy, * You …") runs on into the next."""
    spans: list[tuple[int, int]] = []
    joined = False
    for sentence in sentences_of(text):
        start, end = sentence.start, sentence.end
        leading = LEADING_MARKERS.match(text, start, end)
        if spans and leading:
            spans[-1] = (spans[-1][0], start + len(leading.group(0).rstrip()))
            start += len(leading.group(0))
        if start >= end:
            continue
        if joined and "\n" not in text[spans[-1][1] : start]:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
        joined = text[start:end].rstrip().endswith((",", ";"))
    return spans


LEADING_MARKERS = re.compile(r"(?:\[\d{1,3}\]\s*)+")


def _bare(sentence: str) -> str:
    """The sentence without citation markers, list markers and emphasis."""
    return " ".join(LEADING.sub("", CITATION.sub("", sentence)).replace("**", "").split())


# --- degeneration ---------------------------------------------------------------------------


def degeneration(
    sentence: str,
    *,
    question: str,
    language: str,
    last: bool,
    complete: bool,
    earlier: Sequence[str],
    policy_sentences: Sequence[str],
) -> list[str]:
    """Why this sentence is rejected before any alignment (empty: it is not)."""
    bare = _bare(sentence)
    sources_text = " ".join(policy_sentences)
    reasons = []
    if TEMPLATE_OPENING.search(bare):
        reasons.append("template opening")
    if _repeats(bare, earlier, policy_sentences):
        reasons.append("repetition")
    if _echoes(bare, question):
        reasons.append("echoes the question")
    # The last sentence must end: a list item may go without a full stop when the model
    # stopped by itself (not cut off at its token limit).
    if (
        last
        and not SENTENCE_END.search(TRAILING.sub("", sentence))
        and not (complete and _list_item(sentence))
        and not _ends_as_policy_does(bare, policy_sentences)
    ):
        reasons.append("no sentence end")
    identifiers = [
        m.group(0)
        for m in CODE_IDENTIFIER.finditer(_without_addresses(bare))
        if m.group(0).strip("`") not in sources_text
    ]
    if identifiers:
        reasons.append("code identifier: " + ", ".join(dict.fromkeys(identifiers)))
    if _wrong_language(bare, language):
        reasons.append("wrong language")
    return list(dict.fromkeys(reasons))


def _ends_as_policy_does(bare: str, policy_sentences: Sequence[str]) -> bool:
    """Quoting a policy sentence that a passage cuts off ("… please refer to the") ends
    where the policy text ends: a fragment of the policy, not of the model."""
    tail = [w.lower() for w in WORD.findall(bare)][-6:]
    return len(tail) == 6 and any(
        [w.lower() for w in WORD.findall(p)][-6:] == tail and not SENTENCE_END.search(TRAILING.sub("", p))
        for p in policy_sentences
    )


def _without_addresses(text: str) -> str:
    return re.sub(r"\S+@\S+|\b(?:https?://|www\.)\S+", " ", text)


def _list_item(sentence: str) -> bool:
    return bool(re.match(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+", sentence))


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def _repeats(bare: str, earlier: Sequence[str], policy_sentences: Sequence[str]) -> bool:
    """A sentence said before, or a phrase said again and again in one sentence (a 4-word
    phrase twice, a 3-word one three times, a content word four times) more often than any
    policy sentence says it (a list may name "TWN" four times)."""
    words = [w.lower() for w in WORD.findall(bare)]
    mine = set(words)
    for other in earlier:
        theirs = {w.lower() for w in WORD.findall(other)}
        if mine and theirs and len(mine & theirs) / len(mine | theirs) >= 0.8:
            return True
    policy = [[w.lower() for w in WORD.findall(p)] for p in policy_sentences]
    for n, times in ((4, 2), (3, 3), (1, 4)):
        grams = _ngrams(words, n)
        for gram in set(grams):
            said = grams.count(gram)
            if said < times or (n == 1 and gram[0] in STOPWORDS):
                continue
            if not any(_ngrams(p, n).count(gram) >= said for p in policy):
                return True
    return False


def _echoes(bare: str, question: str) -> bool:
    """The question asked back (a question most of whose words are the asker's), or restated
    without adding anything."""
    mine = {fold(w.lower()) for w in WORD.findall(bare)} - STOPWORDS
    asked = {fold(w.lower()) for w in WORD.findall(question)} - STOPWORDS
    if not mine:
        return bare.rstrip().endswith("?")
    echoed = len(mine & asked) / len(mine)
    if bare.rstrip().endswith("?") and echoed >= 0.5:
        return True
    return len(mine) >= 2 and echoed == 1.0


def _wrong_language(bare: str, language: str) -> bool:
    """Neither the question's language nor the policy's (English): another script, or
    Vietnamese answering an English question."""
    if OTHER_SCRIPT.search(bare):
        return True
    return language == "en" and detect_language(bare) == "vi"


# --- alignment and checks -------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    n: int
    text: str
    words: frozenset[str]
    context: frozenset[str]
    source_context: str  # the passage's title and heading, as written


LIST_GAP = 2  # sentences an item may run on for before the next item (evidence does the same)


def _list_unit(aligned: _Candidate, candidates: list[_Candidate]) -> list[_Candidate]:
    """The aligned sentence; or, when it is a list's lead-in or one of its items, the whole
    list: the sentence before the first item, then the items and what they run on with.
    Candidates are in text order, passage by passage."""
    same = [c for c in candidates if c.n == aligned.n]
    at = same.index(aligned)
    runs: list[list[int]] = []
    for i, candidate in enumerate(same):
        if _list_item(candidate.text):
            if runs and i - runs[-1][-1] <= LIST_GAP + 1:
                runs[-1].append(i)
            else:
                runs.append([i])
    for run in runs:
        start = max(0, run[0] - 1)  # the lead-in
        if start <= at <= run[-1]:
            return same[start : run[-1] + 1]
    return [aligned]


ACRONYM_NAME = re.compile(r"^[A-Z][A-Z0-9]+s?$")
# Capitalised, but not names: months and days are dates, checked as figures.
NOT_NAMES = frozenset(
    [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ]
)


def _names(sentence: str) -> list[str]:
    """The names a sentence uses, once per use: acronyms (parts of "cross-TTS" too) and
    capitalised words after its first word."""
    words = WORD.findall(_bare(PLACEHOLDER.sub(" ", _without_addresses(sentence))))
    names = []
    for i, word in enumerate(words):
        for part in word.split("-"):
            if ACRONYM_NAME.match(part) or (
                i > 0 and part == word and part[:1].isupper() and part[1:].islower() and part not in NOT_NAMES
            ):
                names.append(part)
    return names


def _unnamed(sentence: str, aligned: str, context: str) -> set[str]:
    """Names the sentence uses that its policy sentence does not: a name the passage's title
    or heading uses counts as said, unless the sentence drops one of the policy sentence's own
    names for it (a swap: "your GSA emails" → "your PIV emails")."""
    mine = Counter(_name_key(n) for n in _names(sentence))
    theirs = Counter(_name_key(n) for n in _names(aligned))
    in_sentence = {_name_key(w) for w in _parts(aligned)}
    in_context = {_name_key(w) for w in _parts(context)}
    dropped = any(mine[key] < count for key, count in theirs.items())
    return {
        name
        for name in _names(sentence)
        if _name_key(name) not in in_sentence and (_name_key(name) not in in_context or dropped)
    }


def _parts(text: str) -> list[str]:
    return [part for word in WORD.findall(_without_addresses(text)) for part in word.split("-")]


def _name_key(name: str) -> str:
    """One key for "IDP", "IDPs", "GSA's"."""
    return re.sub(r"['\u2019]s$", "", name.lower()).removesuffix("s")


def _candidates(cited: list[int], sources: Sequence[Source]) -> list[_Candidate]:
    by_n = {s.n: s for s in sources}
    chosen: list[tuple[Source, tuple[str, ...]]]
    if cited:
        chosen = [(by_n[n], by_n[n].sentences) for n in cited if n in by_n]
    else:
        chosen = [(s, s.quoted) for s in sources if s.quoted] or [(s, s.sentences) for s in sources]
    seen: set[tuple[int, str]] = set()
    out = []
    for source, texts in chosen:
        context = _policy_words(source.context)
        for text in texts:
            if (source.n, text) in seen or not WORD.search(text):
                continue
            seen.add((source.n, text))
            out.append(_Candidate(source.n, text, _policy_words(text), context, source.context))
    return out


def _cosines(vector: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(vector)), 1e-12)
    return np.asarray(matrix @ vector / np.maximum(norms, 1e-12))


def _figure_reasons(sentence: str, aligned: str, *, vietnamese: bool) -> list[str]:
    """Every figure of the sentence must be in the aligned policy sentence, in the same role."""
    index = support_index(aligned)
    reasons = []
    for claim in claims_in(sentence):
        if not claim_supported(claim, index):
            reasons.append(f"unsupported claim: {claim.text}")
        elif claim.kind == "number" and not _same_role(claim, sentence, aligned, vietnamese=vietnamese):
            reasons.append(f"claim used for something else: {claim.text}")
    return reasons


def _figure_words(text: str) -> list[str]:
    """The text's tokens, number words as digits, without markers, placeholders or thousands commas."""
    plain = PLACEHOLDER.sub(" ", CITATION.sub(" ", text))
    return WORD.findall(words_to_digits(plain).replace(",", ""))


@dataclass(frozen=True)
class _Role:
    """The content words next to a figure: what it is for ("2 days for other relatives")."""

    before: tuple[str, ...]  # nearest first
    after: tuple[str, ...]


def _roles(text: str, claim: Claim, *, vietnamese: bool = False) -> list[_Role] | None:
    """For each place the claim's number stands, the content words before and after it, units
    left out. None: the number is not there as a word (written another way, "$75")."""
    number = claim.key.split(" ")[0]
    tokens = _figure_words(text)
    at = [i for i, w in enumerate(tokens) if w == number]
    if not at:
        return None
    if vietnamese:  # its syllables mean nothing to an English policy: the glossary's words do
        return [
            _Role(
                before=tuple(reversed(_role_terms(english_terms(" ".join(tokens[max(0, i - 8) : i]))))),
                after=tuple(_role_terms(english_terms(" ".join(tokens[i + 1 : i + 9])))),
            )
            for i in at
        ]
    content = [(i, stem(w)) for i, w in enumerate(tokens) if _role_word(w)]
    return [
        _Role(
            before=tuple(w for j, w in reversed(content) if j < i),
            after=tuple(w for j, w in content if j > i),
        )
        for i in at
    ]


def _role_word(token: str) -> bool:
    words = words_of(token)
    return bool(words) and not words <= _UNIT_WORDS | FRAME_WORDS


def _role_terms(text: str) -> list[str]:
    return [w for w in (stem(t) for t in WORD.findall(text.lower())) if _role_word(w)]


_UNIT_WORDS = frozenset(stem(w) for w in ("hour", "hours", "day", "days", "week", "weeks", "month", "months",
                                          "year", "years", "minute", "minutes", "percent", "dollar", "dollars",
                                          "business", "calendar", "working", "work", "period", "periods",
                                          "pay"))  # fmt: skip  # "pay period"


def _same_role(claim: Claim, sentence: str, aligned: str, *, vietnamese: bool) -> bool:
    """The figure is for the same thing in both sentences. The words right after it say what
    it counts ("2 days *for other relatives*"): those the model wrote must stand right next to
    the same figure in the policy sentence. With none after it, a word just before it must be
    near it in the policy sentence."""
    mine = _roles(sentence, claim, vietnamese=vietnamese)
    theirs = _roles(aligned, claim)
    if not mine or not theirs:
        return True  # written another way ("$75"): its presence was checked
    for role in mine:
        after, before = role.after[:ROLE_AFTER], role.before[:ROLE_BEFORE]
        if after:
            near = {w for r in theirs for w in r.after[:ROLE_AFTER_POLICY] + r.before[:1]}
        else:
            near = {w for r in theirs for w in r.after[:ROLE_WINDOW_POLICY] + r.before[:ROLE_WINDOW_POLICY]}
        said = after or before
        if said and not any(_covered(w, near) for w in said):
            return False
    return True


def _negations(text: str) -> list[str]:
    """Each negation's scope: the first content word after it ("do not *delete*"), "" when
    none follows ("No, …" answering the question)."""
    plain = text.replace("\u2019", "'")
    masked = LIMIT.sub(lambda m: "_" * len(m.group(0)), plain)
    scopes = []
    for match in NEGATION.finditer(masked):
        following = [w for w in _ordered_words(plain[match.end() : match.end() + 80])]
        scopes.append(following[0] if following else "")
    return scopes


def _ordered_words(text: str) -> list[str]:
    out = []
    for token in WORD.findall(text):
        out.extend(sorted(words_of(token)))
    return out


def _polarity_reasons(sentence: str, aligned: str, *, vietnamese: bool) -> list[str]:
    """A negation the model wrote must negate the same word in the policy sentence; a negation
    of the policy sentence must not be dropped from the word the model restates ("Do not delete"
    → "Do delete"); "only" must come from the policy; "yes" must not open a negative sentence."""
    bare = _bare(sentence)
    mine, theirs = _negations(bare), _negations(aligned)
    reasons = []
    if vietnamese:  # its words cannot be matched with the policy's: presence must agree
        if bool(mine) != bool(theirs):
            reasons.append(
                "negation not in the policy sentence" if mine else "the policy sentence's negation is missing"
            )
    else:
        if mine and (not theirs or any(w and w not in theirs for w in mine)):
            reasons.append("negation not in the policy sentence")
        restated = words_of(bare)
        if any(w and w in restated and w not in mine for w in theirs):
            reasons.append("the policy sentence's negation is missing")
    if ONLY.search(bare) and not ONLY.search(aligned):
        reasons.append("'only' not in the policy sentence")
    if YES_OPENING.search(bare) and mine:
        reasons.append("says yes and no")
    return reasons


def support_check(
    *,
    text: str,
    question: str,
    language: str,
    sources: Sequence[Source],
    embed: Embed,
    embed_new: Embed | None = None,
    complete: bool = True,
) -> SupportReport:
    """Check each sentence of the model's `text` against `sources` (module docstring).
    `embed` gives policy sentences' vectors (cached ones, in the pipeline), `embed_new` the
    model's sentences' (default: `embed`). `complete`: the model ended its text itself (it was
    not cut off at its token limit)."""
    language = language if language in ("en", "vi") else "en"
    numbers = {s.n for s in sources}
    policy_sentences = [sentence for s in sources for sentence in s.sentences]
    results: list[SentenceSupport] = []
    pending: list[tuple[SentenceSupport, list[_Candidate]]] = []
    spans = text_sentences(text)
    earlier: list[str] = []
    for i, (start, end) in enumerate(spans):
        sentence = text[start:end]
        cited = _cited(text, spans, i, numbers)
        result = SentenceSupport(text=sentence, start=start, end=end, cited=cited)
        results.append(result)
        bare = _bare(sentence)
        if _neutral(sentence, bare, last=i == len(spans) - 1):
            result.neutral = True
            continue
        result.reasons = degeneration(
            sentence,
            question=question,
            language=language,
            last=i == len(spans) - 1,
            complete=complete,
            earlier=earlier,
            policy_sentences=policy_sentences,
        )
        earlier.append(bare)
        if result.reasons:
            continue
        if not words_of(bare) and not claims_in(bare):
            result.reasons.append("says nothing the policy could back")
            continue
        candidates = _candidates(cited, sources)
        if not candidates:
            result.reasons.append("no policy sentence to check it against")
            continue
        pending.append((result, candidates))
    if pending:
        _align_and_check(
            pending, language=language, question=question, embed=embed, embed_new=embed_new or embed
        )
    _lead_ins_follow_their_lists(results)
    return SupportReport(sentences=results)


def support_unavailable(text: str) -> SupportReport:
    """Every sentence unsupported, for when the check could not run (fail closed)."""
    return SupportReport(
        sentences=[
            SentenceSupport(
                text=text[a:b], start=a, end=b, cited=[], reasons=["the support check could not run"]
            )
            for a, b in text_sentences(text)
        ]
    )


def _cited(text: str, spans: list[tuple[int, int]], i: int, numbers: set[int]) -> list[int]:
    """The passages a sentence cites: its own markers, else those closing its paragraph (a
    marker at the end of a line covers the sentences before it on that line)."""
    for start, end in spans[i:]:
        markers = [int(n) for n in dict.fromkeys(CITATION.findall(text[start:end])) if int(n) in numbers]
        if markers:
            return markers
        if "\n" in text[end : end + 2] or end >= len(text.rstrip()):
            break
    return []


def _lead_ins_follow_their_lists(results: list[SentenceSupport]) -> None:
    """A lead-in ("Here's how to do it:", "… follow these steps:") says what follows is the
    answer: when every item after it fails, so does it."""
    for i, result in enumerate(results):
        if result.neutral or not result.supported or not _bare(result.text).endswith(":"):
            continue
        items = []
        for after in results[i + 1 :]:
            if not _list_item(after.text):
                break
            items.append(after)
        if items and all(not item.supported for item in items):
            result.reasons.append("introduces unsupported text")


def _neutral(sentence: str, bare: str, *, last: bool) -> bool:
    """Claims nothing about the policy: a heading line, or the model saying it cannot answer."""
    if not last and HEADING.match(sentence) and len(bare.split()) <= 8:
        return True
    return declined_in_words(bare) and not claims_in(bare)


def _align_and_check(
    pending: list[tuple[SentenceSupport, list[_Candidate]]],
    *,
    language: str,
    question: str,
    embed: Embed,
    embed_new: Embed,
) -> None:
    """Align each sentence with its best candidate, then check figures, polarity and coverage.
    Vectors in two batches: the model's sentences, and the candidates (cached ones are free)."""
    shortlists: list[list[_Candidate]] = []
    vietnamese = [language == "vi" and detect_language(_bare(r.text)) == "vi" for r, _ in pending]
    for (result, candidates), vi in zip(pending, vietnamese, strict=True):
        mine = _model_words(result.text, vietnamese=vi)
        ranked = sorted(candidates, key=lambda c: -_lexical(mine, c))
        shortlists.append(ranked[:ALIGN_CANDIDATES])
    texts = list(dict.fromkeys(c.text for shortlist in shortlists for c in shortlist))
    policy = dict(zip(texts, np.asarray(embed(texts), dtype=np.float32), strict=True))
    model = np.asarray(embed_new([_bare(r.text) for r, _ in pending]), dtype=np.float32)
    for (result, candidates), shortlist, vector, vi in zip(
        pending, shortlists, model, vietnamese, strict=True
    ):
        mine = _model_words(result.text, vietnamese=vi)
        cosines = _cosines(vector, np.stack([policy[c.text] for c in shortlist]))
        scores = [
            ALIGN_COSINE_WEIGHT * _rescaled(float(cos)) + (1 - ALIGN_COSINE_WEIGHT) * _lexical(mine, c)
            for cos, c in zip(cosines, shortlist, strict=True)
        ]
        best = int(np.argmax(scores))
        aligned = shortlist[best]
        result.aligned, result.aligned_n = aligned.text, aligned.n
        result.cosine = round(float(cosines[best]), 4)
        result.coverage = round(_overlap(mine, aligned), 4)
        result.reasons.extend(_figure_reasons(result.text, aligned.text, vietnamese=vi))
        result.reasons.extend(_polarity_reasons(result.text, aligned.text, vietnamese=vi))
        names = _unnamed(result.text, aligned.text, aligned.source_context)
        if names:
            result.reasons.append("name not in the policy sentence: " + ", ".join(sorted(names)))
        if result.reasons:
            continue  # a wrong figure, negation or name says enough; the looser signals add nothing
        if result.cosine < (MIN_COSINE_VI if vi else MIN_COSINE):
            result.reasons.append("no policy sentence says this")
            continue
        # A sentence may gather a list: its words may come from the lead-in and items around it.
        unit = _list_unit(aligned, candidates)
        held = frozenset().union(*(c.words for c in unit)) | aligned.context
        result.coverage = round(sum(1 for w in mine if _covered(w, held)) / len(mine), 4) if mine else 0.0
        missing = sorted(w for w in mine if not _covered(w, held))
        too_many = not vi and len(missing) > MAX_UNCOVERED
        if mine and (result.coverage < (MIN_COVERAGE_VI if vi else MIN_COVERAGE) or too_many):
            result.reasons.append("not in the policy sentence: " + ", ".join(missing[:5]))


def _lexical(mine: set[str], candidate: _Candidate) -> float:
    """Word agreement for alignment: half how much of the sentence the candidate holds, half
    how much the two share (Jaccard), so that of two sentences holding the model's words the
    one that says little else wins ("… up to 104 …" over a longer "… up to 240 …")."""
    if not mine:
        return 0.0
    theirs = candidate.words - FRAME_WORDS
    shared = sum(1 for w in mine if _covered(w, theirs))
    union = len(mine | theirs)
    return 0.5 * _overlap(mine, candidate) + 0.5 * (shared / union if union else 0.0)


def _overlap(mine: set[str], candidate: _Candidate) -> float:
    if not mine:
        return 0.0
    policy = candidate.words | candidate.context
    return sum(1 for w in mine if _covered(w, policy)) / len(mine)


def _rescaled(cosine: float) -> float:
    return min(1.0, max(0.0, (cosine - COSINE_FLOOR) / COSINE_SPAN))


def passage_source(*, n: int, text: str, quoted: Sequence[str], context: str, whole: bool) -> Source:
    """A passage as the check sees it. `whole`: the model was given the whole passage (generate
    mode), so a sentence citing it may rest on any of its sentences; else only on the quotes.
    Sentences are split as ingestion split them, so their stored vectors are the cached ones."""
    sentences = tuple(s.text for s in sentences_of(text)) if whole else tuple(quoted)
    return Source(n=n, sentences=sentences, quoted=tuple(quoted), context=context)
