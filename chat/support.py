"""The support check: is each sentence a model wrote backed by one policy sentence it was given?

Pure: no database, no model. The caller passes the policy text the model was given (as
`Source`s, numbered as the answer cites them) and the functions that embed sentences (the
pipeline passes the index's e5 embedder, cached for policy sentences; tests pass the same).

For each sentence of the model's text:
  1. Degeneration is rejected outright, before any alignment: a repeated phrase, an echo of
     the question, a template opening ("The answer is:"), no sentence end, a code identifier
     (snake_case, camelCase, func()), a language that is neither the question's nor the policy's.
  2. It is aligned with its best policy sentence: among the sentences of the passages it cites,
     or, citing none, among the quoted evidence; by e5 cosine and shared content words.
  3. That one sentence must hold every figure (number with its unit, date, amount, e-mail, URL,
     form name) the model's sentence states, and in the same role: the words around the figure
     must share a content word with the words around it in the policy sentence ("2 days" for
     other relatives does not back "2 days" for a parent).
  4. Polarity must agree: a negation or "only" the model wrote must be in the policy sentence,
     and a negation of the policy sentence must not be dropped from words the model restates.
  5. The model's content words must be covered by the policy sentence (its passage's title and
     heading count; inflections meet by stem, Vietnamese through the glossary, placeholders such
     as <PERSON_1> are the asker's own), and the cosine must clear a floor.
A sentence that passes all is supported. Thresholds are calibrated on the dev part of the
labelled pairs in bench/golden/support/ (docs/answers-verified.md; `python -m bench.support_eval`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from chat.claims import CITATION, Claim, claim_supported, claims_in, support_index, words_to_digits
from privacy.language import detect_language, fold
from rag.evidence import PLACEHOLDER, STOPWORDS, WORD, sentences_of, stem
from rag.glossary import english_terms

Embed = Callable[[list[str]], Sequence[Sequence[float]]]

# --- thresholds (calibrated on the dev pairs; see the module docstring) ------------------------
# e5 cosine between a model sentence and the policy sentence it restates: unrelated sentences of
# the same handbook sit near 0.78, restatements above 0.88.
MIN_COSINE = 0.86
MIN_COVERAGE = 0.75  # share of the sentence's content words the aligned policy sentence holds
MAX_UNCOVERED = 1  # content words it may add that the policy sentence does not hold
MIN_COSINE_VI = 0.86  # a Vietnamese sentence over English policy: e5 across languages
MIN_COVERAGE_VI = 0.5  # of its glossary words (its own syllables match nothing English)
ALIGN_COSINE_WEIGHT = 0.5  # alignment score: this much cosine (rescaled), the rest word overlap
COSINE_FLOOR, COSINE_SPAN = 0.75, 0.2
ROLE_WINDOW = 4  # content words either side of a figure that say what it is for
ROLE_WINDOW_POLICY = 6
ROLE_MIN_SHARE = 1.0  # of those words, the share the policy sentence has around the same figure
ROLE_MIN_SHARE_VI = 0.5  # a Vietnamese sentence's glossary words: loose, several per phrase
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
LIMIT = re.compile(r"\b(?:no|not)\s+(?:later|more|less|fewer|earlier|sooner|longer|greater)\s+than\b", re.I)
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
        "able",
        "allowed",
        "permitted",
        "required",
        "requires",
        "require",
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
    Citation markers after a sentence's full stop ("… monthly. [1] Up to …") belong to it."""
    spans: list[tuple[int, int]] = []
    for sentence in sentences_of(text):
        start, end = sentence.start, sentence.end
        leading = LEADING_MARKERS.match(text, start, end)
        if spans and leading:
            spans[-1] = (spans[-1][0], start + len(leading.group(0).rstrip()))
            start += len(leading.group(0))
        if start >= end:
            continue
        spans.append((start, end))
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
    sources_text: str,
) -> list[str]:
    """Why this sentence is rejected before any alignment (empty: it is not)."""
    bare = _bare(sentence)
    reasons = []
    if TEMPLATE_OPENING.search(bare):
        reasons.append("template opening")
    if _repeats(bare, earlier):
        reasons.append("repetition")
    if _echoes(bare, question):
        reasons.append("echoes the question")
    # The last sentence must end: a list item may go without a full stop when the model
    # stopped by itself (not cut off at its token limit).
    if (
        last
        and not SENTENCE_END.search(TRAILING.sub("", sentence))
        and not (complete and _list_item(sentence))
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


def _without_addresses(text: str) -> str:
    return re.sub(r"\S+@\S+|\b(?:https?://|www\.)\S+", " ", text)


def _list_item(sentence: str) -> bool:
    return bool(re.match(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+", sentence))


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def _repeats(bare: str, earlier: Sequence[str]) -> bool:
    """A phrase said twice in one sentence, a word said over and over, or a sentence said before."""
    words = [w.lower() for w in WORD.findall(bare)]
    grams = _ngrams(words, 3)
    if len(grams) != len(set(grams)):
        return True
    content = [w for w in words if w not in STOPWORDS]
    if content and max(content.count(w) for w in set(content)) >= 4:
        return True
    mine = set(words)
    for other in earlier:
        theirs = {w.lower() for w in WORD.findall(other)}
        if mine and theirs and len(mine & theirs) / len(mine | theirs) >= 0.8:
            return True
    return False


def _echoes(bare: str, question: str) -> bool:
    """The question asked back, or restated without adding anything."""
    if bare.rstrip().endswith("?"):
        return True
    mine = {fold(w.lower()) for w in WORD.findall(bare)} - STOPWORDS
    asked = {fold(w.lower()) for w in WORD.findall(question)} - STOPWORDS
    if not mine or not asked:
        return False
    new = mine - asked
    return len(mine) >= 2 and len(new) == 0


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
        context = frozenset(words_of(source.context))
        for text in texts:
            if (source.n, text) in seen or not WORD.search(text):
                continue
            seen.add((source.n, text))
            out.append(_Candidate(source.n, text, frozenset(words_of(text)), context))
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


def _role_words(text: str, claim: Claim, width: int, *, vietnamese: bool = False) -> set[str] | None:
    """The content words on either side of each place the claim's number stands (`width` of
    them each way), units left out: what the figure is for. None: the number is not there as a
    word (written another way, "$75")."""
    number = claim.key.split(" ")[0]
    tokens = _figure_words(text)
    at = [i for i, w in enumerate(tokens) if w == number]
    if not at:
        return None
    if vietnamese:  # its syllables mean nothing to an English policy: the glossary's words do
        return (
            {
                w
                for i in at
                for w in words_of(english_terms(" ".join(tokens[max(0, i - 2 * width) : i + 1 + 2 * width])))
            }
            - _UNIT_WORDS
            - FRAME_WORDS
        )
    content = [(i, stem(w)) for i, w in enumerate(tokens) if _content(w)]
    around: set[str] = set()
    for i in at:
        before = [w for j, w in content if j < i][-width:]
        after = [w for j, w in content if j > i][:width]
        around |= set(before) | set(after)
    return around - _UNIT_WORDS - FRAME_WORDS


def _content(token: str) -> bool:
    return bool(words_of(token))


_UNIT_WORDS = frozenset(stem(w) for w in ("hour", "hours", "day", "days", "week", "weeks", "month", "months",
                                          "year", "years", "minute", "minutes", "percent", "dollar", "dollars",
                                          "business", "calendar", "working", "work", "period", "periods"))  # fmt: skip


def _same_role(claim: Claim, sentence: str, aligned: str, *, vietnamese: bool) -> bool:
    """The words around the figure in the model's sentence are all around the same figure in
    the policy sentence (when the model says what the figure is for at all)."""
    mine = _role_words(sentence, claim, ROLE_WINDOW, vietnamese=vietnamese)
    theirs = _role_words(aligned, claim, ROLE_WINDOW_POLICY)
    if not mine or theirs is None:
        return True  # nothing said of it, or written another way ("$75"): its presence was checked
    share = sum(1 for w in mine if _covered(w, theirs)) / len(mine)
    return share >= (ROLE_MIN_SHARE_VI if vietnamese else ROLE_MIN_SHARE)


def _scope(text: str, match: re.Match[str]) -> set[str]:
    """The content words a negation governs: the next few after it."""
    return set(list(words_of(text[match.end() : match.end() + 60]))[:6])


def _negations(text: str) -> list[re.Match[str]]:
    masked = LIMIT.sub(lambda m: "_" * len(m.group(0)), text)
    return list(NEGATION.finditer(masked))


def _polarity_reasons(sentence: str, aligned: str) -> list[str]:
    bare = _bare(sentence)
    mine, theirs = _negations(bare), _negations(aligned)
    reasons = []
    if mine and not theirs:
        reasons.append("negation not in the policy sentence")
    if theirs and not mine:
        # A negation the model dropped matters when it governs words the model restates.
        restated = words_of(bare)
        if any(_scope(aligned, m) & restated for m in theirs):
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
    sources_text = " ".join(" ".join(s.sentences) for s in sources)
    results: list[SentenceSupport] = []
    pending: list[tuple[SentenceSupport, list[_Candidate]]] = []
    spans = text_sentences(text)
    earlier: list[str] = []
    for i, (start, end) in enumerate(spans):
        sentence = text[start:end]
        cited = [int(n) for n in dict.fromkeys(CITATION.findall(sentence)) if int(n) in numbers]
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
            sources_text=sources_text,
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
        _align_and_check(pending, language=language, embed=embed, embed_new=embed_new or embed)
    return SupportReport(sentences=results)


def _neutral(sentence: str, bare: str, *, last: bool) -> bool:
    """Claims nothing about the policy: a heading line, or the model saying it cannot answer."""
    if not last and HEADING.match(sentence) and len(bare.split()) <= 8:
        return True
    return declined_in_words(bare) and not claims_in(bare)


def _align_and_check(
    pending: list[tuple[SentenceSupport, list[_Candidate]]], *, language: str, embed: Embed, embed_new: Embed
) -> None:
    """Align each sentence with its best candidate, then check figures, polarity and coverage.
    Vectors in two batches: the model's sentences, and the candidates (cached ones are free)."""
    shortlists: list[list[_Candidate]] = []
    vietnamese = [language == "vi" and detect_language(_bare(r.text)) == "vi" for r, _ in pending]
    for (result, candidates), vi in zip(pending, vietnamese, strict=True):
        mine = _model_words(result.text, vietnamese=vi)
        ranked = sorted(candidates, key=lambda c: -_overlap(mine, c))
        shortlists.append(ranked[:ALIGN_CANDIDATES])
    texts = list(dict.fromkeys(c.text for shortlist in shortlists for c in shortlist))
    policy = dict(zip(texts, np.asarray(embed(texts), dtype=np.float32), strict=True))
    model = np.asarray(embed_new([_bare(r.text) for r, _ in pending]), dtype=np.float32)
    for (result, _), shortlist, vector, vi in zip(pending, shortlists, model, vietnamese, strict=True):
        mine = _model_words(result.text, vietnamese=vi)
        cosines = _cosines(vector, np.stack([policy[c.text] for c in shortlist]))
        scores = [
            ALIGN_COSINE_WEIGHT * _rescaled(float(cos)) + (1 - ALIGN_COSINE_WEIGHT) * _overlap(mine, c)
            for cos, c in zip(cosines, shortlist, strict=True)
        ]
        best = int(np.argmax(scores))
        aligned = shortlist[best]
        result.aligned, result.aligned_n = aligned.text, aligned.n
        result.cosine = round(float(cosines[best]), 4)
        result.coverage = round(_overlap(mine, aligned), 4)
        result.reasons.extend(_figure_reasons(result.text, aligned.text, vietnamese=vi))
        result.reasons.extend(_polarity_reasons(result.text, aligned.text))
        if result.reasons:
            continue  # a wrong figure or negation says enough; the looser signals add nothing
        if result.cosine < (MIN_COSINE_VI if vi else MIN_COSINE):
            result.reasons.append("no policy sentence says this")
        else:
            missing = sorted(w for w in mine if not _covered(w, aligned.words | aligned.context))
            too_many = not vi and len(missing) > MAX_UNCOVERED
            if mine and (result.coverage < (MIN_COVERAGE_VI if vi else MIN_COVERAGE) or too_many):
                result.reasons.append("not in the policy sentence: " + ", ".join(missing[:5]))


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
