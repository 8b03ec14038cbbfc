"""Final-answer extraction and exact numeric comparison: the one rule set that the rewards, `grade`
and `evaluate` all use, so the training signal and the reported accuracy can never disagree.

Rules (each has a row in tests/test_answers.py):

1. **Only the answer, not an invented continuation.** The completion is cut at the first line that
   starts a new problem (`Question:`, `Q:`, `Problem:`) or at a chat/end-of-text special token. A
   model that answers and then invents "Question: … #### 7" is graded on what came before.
2. **Recognised final-answer forms**: `#### N`, `#### The final answer is N`, `The final answer is N`,
   `The answer is N`, `A: N` (at the start of a line) and `\\boxed{N}`. Case-insensitive; `:`, `=`, `*`
   (markdown bold) and spaces may stand between the phrase and N.
3. **Numbers** are read exactly (as fractions, so `0.5 == .50`, `1,200 == 1200.0`): an optional sign
   (`-` or the Unicode minus, before or after a currency sign), an optional `$ € £`, digits with
   correct thousands groups (`1,234,567`), an optional decimal part, an optional `/denominator`.
   Units or punctuation after N are fine (`$28`, `28 dollars`, `28%`, `28.`).
4. **Reward hacking scores nothing** (the extraction is `None`, so correctness 0 and format 0):
   - a malformed number where the answer should be: `4,2`, `1,20`, `1,2000`, `1.2.3`, `0,5`
     (never read as 42, 4 or 0.5);
   - several candidates on one answer line: `5 or 6`, `5, 6`, `5-6`, `5 to 6`, `4 2`, `2+3=5`;
   - answer lines that disagree with each other (`#### 5` … `#### 6`): hedging is not rewarded,
     while repeating the same answer is harmless.
5. **Bounded time.** Every regex is linear (no nested quantifiers), the number after a marker is read
   from a window of at most 64 characters, so a megabyte of `####`, digits and commas is graded in
   milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

# Where an invented follow-up problem (or the end-of-text marker the tokenizer did not strip) begins.
_CONTINUATION = re.compile(
    r"\n[ \t]*(?:Question|Q|Problem)[ \t]*:|<\|(?:endoftext|im_end|im_start)\|>|</s>", re.ASCII
)
# The start of a final answer. Named groups tell the forms apart; the canonical training form is
# `#### The final answer is N` (group `canon`).
_MARKER = re.compile(
    r"(?P<hashes>####[ \t]*(?P<canon>the[ \t]+final[ \t]+answer[ \t]+is)?)"
    r"|(?P<phrase>(?:the[ \t]+)?(?:final[ \t]+)?answer[ \t]+is)"
    r"|(?P<a>^[ \t]*A[ \t]*:)"
    r"|(?P<boxed>\\boxed[ \t]*\{)",
    re.IGNORECASE | re.MULTILINE | re.ASCII,
)
_NUMBER = re.compile(
    r"[ \t:=*]*"  # separators between the phrase and N
    r"(?P<neg>[-\u2212][ \t]*)?[$\u20ac\u00a3]?[ \t]*(?P<neg2>[-\u2212])?"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)?(?P<dec>\.\d+)?"
    r"(?:[ \t]*/[ \t]*(?P<den>\d+))?",
)
# What may not follow N: more digits glued on by `,` or `.` (a malformed number) or a second candidate.
_AMBIGUOUS_TAIL = re.compile(
    r"[,.]\d|\d|[ \t]*(?:or|and|to|[,;/+\-\u2013\u2212=|])?[ \t]*[-\u2212$]?\d", re.IGNORECASE | re.ASCII
)
_WINDOW = 64  # characters read after a marker


@dataclass(frozen=True)
class Answer:
    """The outcome of reading a completion: `value` is None when there is no usable final answer."""

    value: Fraction | None
    canonical: bool = False  # an answer line used the `#### The final answer is N` form
    reason: str = ""  # why `value` is None ("no final answer", "malformed number", "conflicting answers")


NO_ANSWER = Answer(None, reason="no final answer")


class _Malformed(Exception):
    """A number stands where the answer should be, but it cannot be read unambiguously."""


def parse_number(text: str) -> Fraction | None:
    """Read `text` as exactly one number (gold answers, `final_answer` columns); None if it is not."""
    try:
        value, end = _read_number(text.strip(), 0)
    except _Malformed:
        return None
    return value if end == len(text.strip()) or not text.strip()[end:].strip(" .") else None


def _read_number(text: str, pos: int) -> tuple[Fraction | None, int]:
    """Read N at `pos`: (value, end) — value None when no number stands there; _Malformed when hacked."""
    window = text[pos : pos + _WINDOW]
    m = _NUMBER.match(window)
    if not m or (m["int"] is None and m["dec"] is None):
        return None, pos
    if m["neg"] and m["neg2"]:
        raise _Malformed
    if m["den"] is not None and m["dec"] is not None:
        raise _Malformed
    if _AMBIGUOUS_TAIL.match(window, m.end()):
        raise _Malformed
    value = Fraction((m["int"] or "0").replace(",", "") + (m["dec"] or ""))
    if m["den"] is not None:
        if int(m["den"]) == 0:
            raise _Malformed
        value /= int(m["den"])
    return (-value if m["neg"] or m["neg2"] else value), pos + m.end()


def answer_segment(completion: str) -> str:
    """The part of a completion that is graded: everything before an invented next problem."""
    cut = _CONTINUATION.search(completion)
    return completion if cut is None else completion[: cut.start()]


def extract(completion: str) -> Answer:
    """Read a completion's final answer under the module's rules."""
    segment = answer_segment(completion)
    found: Fraction | None = None
    canonical = False
    for marker in _MARKER.finditer(segment):
        try:
            value, _ = _read_number(segment, marker.end())
        except _Malformed:
            return Answer(None, reason="malformed or ambiguous number")
        if value is None:
            continue
        if found is not None and value != found:
            return Answer(None, reason="conflicting answers")
        found = value
        canonical = canonical or marker["canon"] is not None
    return NO_ANSWER if found is None else Answer(found, canonical=canonical)


def same_number(a: Fraction | None, b: Fraction | None) -> bool:
    """Exact comparison; a missing answer never equals anything."""
    return a is not None and b is not None and a == b


def format_number(value: Fraction) -> str:
    """Canonical text for a number (`-3`, `0.5`, `1000`, `1/3`): exact, and stable across runs."""
    d, twos_fives = value.denominator, 0
    for p in (2, 5):
        while d % p == 0:
            d, twos_fives = d // p, twos_fives + 1
    if d != 1:
        return str(value)  # not a finite decimal: keep the fraction
    scaled = value * 10**twos_fives  # an integer now
    text = f"{abs(scaled.numerator):0{twos_fives + 1}d}"
    whole, frac = text[: len(text) - twos_fives] or "0", text[len(text) - twos_fives :].rstrip("0")
    return ("-" if value < 0 else "") + whole + ("." + frac if frac else "")
