"""Final-answer extraction and exact numeric comparison: the one rule set that the rewards, `grade`
and `evaluate` all use, so the training signal and the reported accuracy can never disagree.

Rules (each has a row in tests/test_answers.py):

1. **Only the answer, not an invented continuation.** The completion is cut at the first line that
   starts a new problem (`Question:`, `Q:`, `Problem:`) or at a chat/end-of-text special token. A
   model that answers and then invents "Question: … #### 7" is graded on what came before.
2. **Recognised final-answer forms**: `#### N`, `#### The final answer is N`, `The final answer is N`,
   `The answer is N`, `A: N` (at the start of a line) and `\\boxed{N}`. `####` phrases are
   case-insensitive, `answer is` may be capitalised (`Answer is`); `:`, `=`, `*` (markdown bold) and
   spaces may stand between the phrase and N.
3. **Numbers** are read exactly (as fractions, so `0.5 == .50`, `1,200 == 1200.0`): an optional sign
   (`-` or the Unicode minus, before or after a currency sign), an optional `$ € £`, digits with
   correct thousands groups (`1,234,567`), an optional decimal part, an optional `/denominator`.
   Units or punctuation after N are fine (`$28`, `28 dollars`, `28%`, `28.`).
4. **Reward hacking scores nothing** (the extraction is `None`, so correctness 0 and format 0):
   - a malformed number where the answer should be: `4,2`, `1,20`, `1,2000`, `1.2.3`, `0,5`
     (never read as 42, 4 or 0.5);
   - several candidates on one answer line: `5 or 6`, `5, 6`, `5-6`, `5 to 6`, `4 2`, `2+3=5`;
   - answer lines that disagree with each other (`#### 5` … `#### 6`, or `#### 6` then "The answer is
     5" after it): hedging is not rewarded, while repeating the same answer is harmless.
   A phrase followed later on its line by `=` starts a calculation, not an answer, and is skipped
   ("the final answer is 15 gallons * 8 = 120 pints" is a step; its answer line comes after).
5. **The final answer decides.** Once a `####` line holds a number, an "answer is N" phrase before it
   is reasoning ("So the answer is 5 apples per box." … `#### The final answer is 20` reads 20), not a
   competing answer. Explicit answer marks (`A: N` lines, `\\boxed{N}`) and anything after the first
   such `####` line still compete with it.
6. **Bounded time.** Every regex is linear (no nested quantifiers), the number after a marker is read
   from a window of at most 64 characters, so a megabyte of `####`, digits and commas is graded in
   milliseconds.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction
from typing import NamedTuple

from grpo_rlvr.prompt_format import DEFAULT

Number = int | Fraction  # exact: integers stay int, decimals and fractions are Fractions

# Line starts that matter: an invented follow-up problem (`Question:`, `Q:`, `Problem:`) ends the graded
# part; `A:` is an answer form. One pass over the newlines finds both.
_LINE_START = re.compile(r"\n[ \t]*(?:(?P<cont>Question|Q|Problem)|A)[ \t]*:", re.ASCII)
_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_end|>", "<|im_start|>", "</s>")  # end-of-text left in the text
# Other markers are found with `str.find` on a literal (C speed) and confirmed by an anchored regex.
_CANONICAL = DEFAULT.canonical  # "#### The final answer is": the answer line the format reward asks for
_HASHES_TAIL = re.compile(r"[ \t]*(?P<canon>the[ \t]+final[ \t]+answer[ \t]+is)?", re.IGNORECASE | re.ASCII)
_PHRASE = re.compile(r"answer[ \t]+is", re.IGNORECASE | re.ASCII)
_BOXED = re.compile(r"\\boxed[ \t]*\{", re.ASCII)
_NUMBER = re.compile(
    r"[ \t:=*]*"  # separators between the phrase and N
    r"(?P<neg>[-\u2212][ \t]*)?[$\u20ac\u00a3]?[ \t]*(?P<neg2>[-\u2212])?"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)?(?P<dec>\.\d+)?"
    r"(?:[ \t]*/[ \t]*(?P<den>\d+))?"
    # What may not follow N: digits glued on by `,` or `.` (a malformed number) or a second candidate.
    r"(?P<bad>[,.]\d|\d|[ \t]*(?i:or|and|to|[,;/+\-\u2013\u2212=|])?[ \t]*[-\u2212$]?\d)?",
    re.ASCII,
)
# A bare integer that ends its line (` 72`, ` 72.`): the usual answer, which no rule below can reject.
_PLAIN_INTEGER = re.compile(r"[ \t]?(\d{1,15})\.?[ \t]*(?:\n|\Z)", re.ASCII)
_WINDOW = 64  # characters read after a marker


class Answer(NamedTuple):
    """The outcome of reading a completion: `value` is None when there is no usable final answer."""

    value: Number | None
    canonical: bool = False  # an answer line used the `#### The final answer is N` form
    reason: str = ""  # why `value` is None ("no final answer", "malformed number", "conflicting answers")


NO_ANSWER = Answer(None, reason="no final answer")


class _Malformed(Exception):
    """A number stands where the answer should be, but it cannot be read unambiguously."""


@functools.lru_cache(maxsize=65536)
def parse_number(text: str) -> Number | None:
    """Read `text` as exactly one number (gold answers, `final_answer` columns); None if it is not."""
    try:
        value, end = _read_number(text.strip(), 0)
    except _Malformed:
        return None
    return value if end == len(text.strip()) or not text.strip()[end:].strip(" .") else None


def _read_number(text: str, pos: int) -> tuple[Number | None, int]:
    """Read N at `pos`: (value, end) — value None when no number stands there; _Malformed when hacked."""
    m = _NUMBER.match(text, pos, pos + _WINDOW)
    neg, neg2, whole, dec, den, bad = m.groups()
    if whole is None and dec is None:
        return None, pos
    if bad is not None or (neg and neg2) or (den is not None and (dec is not None or int(den) == 0)):
        raise _Malformed
    digits = (whole or "0").replace(",", "")
    value: Number = int(digits) if dec is None else Fraction(digits + dec)
    if den is not None:
        value = Fraction(value, int(den))
    return (-value if neg or neg2 else value), m.end()


def _scan_lines(text: str) -> tuple[int, list[int]]:
    """(where the graded part ends, positions right after each `A:` that opens a line before it)."""
    end, answers = len(text), []
    if text.lstrip(" \t").startswith("A:"):
        answers.append(text.index("A:") + 2)
    m = _LINE_START.search(text)
    while m is not None:
        if m["cont"] is not None:
            end = m.start()
            break
        answers.append(m.end())
        m = _LINE_START.search(text, m.end())
    if "<" in text:
        for token in _SPECIAL_TOKENS:
            i = text.find(token, 0, end)
            if i != -1:
                end = i
        answers = [a for a in answers if a <= end]
    return end, answers


def answer_segment(completion: str) -> str:
    """The part of a completion that is graded: everything before an invented next problem."""
    return completion[: _scan_lines(completion)[0]]


# Kinds of final-answer marker: an `A:` line, a `####` line, an "answer is" phrase, `\\boxed{`.
LINE, HASHES, PHRASE, BOXED = range(4)


def _markers(
    text: str, answer_lines: list[int], canonical_line: str = _CANONICAL
) -> list[tuple[int, int, bool]]:
    """(position right after a final-answer marker, its kind, whether it is the canonical form).

    Lines, then `####` lines in text order, then phrases, then boxes: `extract` knows where the first
    `####` line is before it meets a phrase. `#` and `\\` are rare: finding them first (a memchr, nearly
    free) spares a full scan for `####` and `\\boxed`; `A:` came from the line scan, so a typical
    completion costs one more full scan, for `answer is`."""
    found = [(a, LINE, False) for a in answer_lines]
    i = text.find("#")
    i = text.find("####", i) if i != -1 else -1
    while i != -1:
        if text.startswith(canonical_line, i):  # the trained form, spelled exactly: skip the regex
            found.append((i + len(canonical_line), HASHES, True))
        else:
            tail = _HASHES_TAIL.match(text, i + 4)
            found.append((tail.end(), HASHES, tail["canon"] is not None and canonical_line == _CANONICAL))
        i = text.find("####", i + 4)
    # "answer is" / "Answer is", except inside the canonical lines already read.
    nswer = canonical_line.find("nswer")
    canonical_nswer = (
        {end - len(canonical_line) + nswer for end, _, canon in found if canon} if nswer != -1 else set()
    )
    i = text.find("nswer")
    while i != -1:
        if i not in canonical_nswer:
            phrase = _PHRASE.match(text, i - 1) if i else None
            if phrase:
                found.append((phrase.end(), PHRASE, False))
        i = text.find("nswer", i + 5)
    i = text.find("\\")
    i = text.find("\\boxed", i) if i != -1 else -1
    while i != -1:
        boxed = _BOXED.match(text, i)
        if boxed:
            found.append((boxed.end(), BOXED, False))
        i = text.find("\\boxed", i + 6)
    return found


def extract(completion: str, canonical_line: str = _CANONICAL) -> Answer:
    """Read a completion's final answer under the module's rules; `canonical_line` is the prompt format's
    answer line up to the number (`PromptFormat.canonical`)."""
    end, answer_lines = _scan_lines(completion)
    segment = completion[:end]
    found: Number | None = None
    canonical = False
    answer_line = -1  # where the marker of the first `####` line with a number ends (-1: none yet)
    for start, kind, is_canonical in _markers(segment, answer_lines, canonical_line):
        if kind == PHRASE and start < answer_line:
            continue  # reasoning before the final answer line ("the answer is 5 per box"), not an answer
        plain = _PLAIN_INTEGER.match(segment, start, start + _WINDOW)
        if plain is not None:  # the common case, read without the general parser
            value = int(plain[1])
        else:
            try:
                value, end = _read_number(segment, start)
            except _Malformed:
                return Answer(None, reason="malformed or ambiguous number")
            line_end = segment.find("\n", end, end + _WINDOW)
            if value is None or segment.find("=", end, line_end if line_end != -1 else end + _WINDOW) != -1:
                continue  # no number, or the start of a calculation ("the answer is 15 * 8 = 120")
        if found is not None and value != found:
            return Answer(None, reason="conflicting answers")
        found = value
        if kind == HASHES and answer_line < 0:
            answer_line = start
        canonical = canonical or is_canonical
    return NO_ANSWER if found is None else Answer(found, canonical, "")


_last_batch: tuple[str, list[str], list[Answer]] = ("", [], [])


def extract_all(completions: list[str], canonical_line: str = _CANONICAL) -> list[Answer]:
    """`extract` for a batch. TRL scores the same batch with each reward in turn and every GSM8K reward
    reads the answers, so the last batch is remembered (compared by value, so a changed list is re-read)."""
    global _last_batch
    read_as, texts, answers = _last_batch
    if texts != completions or read_as != canonical_line:
        texts, answers = list(completions), [extract(c, canonical_line) for c in completions]
        _last_batch = (canonical_line, texts, answers)
    return answers


def same_number(a: Number | None, b: Number | None) -> bool:
    """Exact comparison; a missing answer never equals anything."""
    return a is not None and b is not None and a == b


def format_number(value: Number) -> str:
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
