"""`keywords`: credit for using the row's required terms in real prose, nothing for keyword stuffing.

Matching: case-insensitive (Unicode casefolding via `re.IGNORECASE`), whole words: a term matches
only where it is not preceded or followed by a word character (Unicode-aware, so `café` and `naïve`
work and `cat` does not match `cats` or `concatenate`; plurals and other forms count only when
listed). A multi-word term matches with any whitespace between its words ("machine learning" ~
"Machine\\nlearning"). Punctuation inside a term is literal (`C++`, `node.js`).

Score: the share of required terms present, so 1.0 only when all are. Stuffing scores 0:
- any term occurring more than `max_repeats` (3) times;
- fewer than `min_other_words` (5) words that are not part of a keyword match;
- keyword words above `max_density` (0.5) of all words;
- no sentence punctuation (`.`, `!`, `?`, or their CJK forms) at all.
Bounded time: only the first `max_chars` (20,000) characters are read, and every pattern is a
literal joined by `\\s+`, so matching is linear.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from grpo_rlvr.rewards import completion_text, register

_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f]")


@functools.lru_cache(maxsize=4096)
def _pattern(term: str) -> re.Pattern[str]:
    words = term.split()
    if not words:
        raise ValueError(f"keywords: empty term {term!r}")
    return re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)", re.IGNORECASE)


def keyword_score(
    text: str,
    terms: Sequence[str],
    *,
    max_repeats: int = 3,
    min_other_words: int = 5,
    max_density: float = 0.5,
    max_chars: int = 20_000,
) -> float:
    """One completion's score; see the module docstring for the rules."""
    if not terms or isinstance(terms, str):
        raise ValueError(f"keywords: each row needs a non-empty list of terms, got {terms!r}")
    text = text[:max_chars]
    counts = [len(_pattern(t).findall(text)) for t in terms]
    words = len(_WORD.findall(text))
    keyword_words = sum(n * len(_WORD.findall(t)) for n, t in zip(counts, terms, strict=True))
    stuffed = (
        max(counts) > max_repeats
        or words - keyword_words < min_other_words
        or keyword_words > max_density * words
        or not _SENTENCE_END.search(text)
    )
    return 0.0 if stuffed else sum(n > 0 for n in counts) / len(terms)


@register("keywords", columns=("keywords",))
def keywords(
    completions: list,
    keywords: list[list[str]],
    *,
    max_repeats: int = 3,
    min_other_words: int = 5,
    max_density: float = 0.5,
    max_chars: int = 20_000,
    **_columns: object,  # TRL passes every dataset column; options are checked by name in config
) -> list[float]:
    """Share of each row's required terms used in prose; 0 for stuffing."""
    return [
        keyword_score(
            completion_text(c),
            terms,
            max_repeats=max_repeats,
            min_other_words=min_other_words,
            max_density=max_density,
            max_chars=max_chars,
        )
        for c, terms in zip(completions, keywords, strict=True)
    ]
