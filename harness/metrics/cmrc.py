"""CMRC2018 exact match (EM) and F1, computed as the official `cmrc2018_evaluate.py` does.

The official scorer (v5, written for Python 2) compares a prediction with every reference
answer of a question and keeps the best score:

- EM: both strings are lower-cased, stripped and cleared of the characters in
  `PUNCTUATION` (`normalize_answer`). EM is 1 when the prediction equals any reference.
- F1: both strings are split into tokens (`segment`), and the longest common *contiguous*
  run of tokens gives precision and recall. This is a longest common substring, so word
  order matters, unlike the bag-of-tokens F1 of SQuAD.

Corpus scores are 100·Σ/N over every question of the gold file. A question without a
prediction adds 0 and is listed as unanswered. Predictions are compared after `str()`, and
question ids compare as strings.

Limitations, all of them quirks of the official scorer that are kept on purpose:

- `PUNCTUATION` is tested one character at a time, so its two-character entry "……" never
  matches and "…" is kept. ASCII `, . ? ! ( ) " ' ;` and "‘" are kept too.
- Only U+4E00–U+9FA5 count as Chinese characters. Other Han characters (extension A,
  compatibility ideographs) join the surrounding English run.
- Internal whitespace counts for EM but not for F1: "北京 大学" against "北京大学" has
  EM 0 and F1 1.0.
- A prediction whose normalised text is empty or blank equals a reference that normalises
  to the same text, yet has no tokens, so EM can be 1 while F1 is 0 (reference "-",
  prediction "").
- Lower-casing follows Python 2: character by character with the simple case mapping, so
  there is no final sigma and "İ" becomes "i". Other case and whitespace properties come
  from Python 3's Unicode database, which is newer than Python 2.7's (Unicode 5.2): a
  character whose properties changed since then, such as U+180E (whitespace in 5.2), is
  treated the Python 3 way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.metrics.word_tokens import word_tokenize

logger = logging.getLogger(__name__)

# The official list, in its order: 33 entries, one of them ("……") two characters long.
PUNCTUATION_LIST = (
    "-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=",
    "，", "。", "：", "？", "！", "“", "”", "；", "’", "《", "》", "……", "·", "、",
    "「", "」", "（", "）", "－", "～", "『", "』",
)  # fmt: skip
# Membership of one character, as the official `char in sp_char`: "……" can never match.
PUNCTUATION = frozenset(PUNCTUATION_LIST)

# Python 3 lower-cases U+0130 to "i" plus a combining dot, while Python 2 gives "i" alone.
PYTHON2_LOWER = {"\u0130": "i"}


@dataclass(frozen=True)
class CmrcScores:
    """Corpus EM and F1 on the 0-100 scale, over `total` gold questions.

    `unanswered` lists, in gold-file order, the ids of questions without a prediction.
    Each of them counts in `total` with EM 0 and F1 0.
    """

    em: float
    f1: float
    total: int
    unanswered: tuple[str, ...]

    @property
    def average(self) -> float:
        """Return (EM + F1) / 2, the AVERAGE line of the official script (CLUE ranks by EM)."""
        return (self.em + self.f1) * 0.5


def is_cjk(char: str) -> bool:
    """Tell whether a character is in U+4E00–U+9FA5, the official scorer's Chinese range."""
    return "\u4e00" <= char <= "\u9fa5"


def lower_like_python2(text: str) -> str:
    """Lower-case text one character at a time, as Python 2's `unicode.lower` does."""
    if text.isascii():
        return text.lower()
    return "".join(PYTHON2_LOWER.get(char) or char.lower() for char in text)


def prepare(text: Any) -> str:
    """Apply the official first step: `str()`, lower-case, strip the ends."""
    return lower_like_python2(str(text)).strip()


def normalize_answer(text: Any) -> str:
    """Return the form EM compares: lower-cased, stripped, without `PUNCTUATION` characters.

    >>> normalize_answer(" 《北京》, ABC…… ")
    '北京, abc……'
    """
    return "".join(char for char in prepare(text) if char not in PUNCTUATION)


def segment(text: Any) -> list[str]:
    """Split text into F1 tokens: each Chinese character alone, other runs by NLTK.

    `PUNCTUATION` characters are dropped without ending the current run. A run of other
    characters (Latin letters, digits, spaces, other punctuation) is tokenised by NLTK's
    `word_tokenize` when a Chinese character or the end of the text closes it.

    >>> segment("全长1,200米（约0.75英里）")
    ['全', '长', '1,200', '米', '约', '0.75', '英', '里']
    >>> segment("北京,")
    ['北', '京', ',']
    """
    tokens: list[str] = []
    run: list[str] = []
    for char in prepare(text):
        if char in PUNCTUATION:
            continue
        if is_cjk(char):
            if run:
                tokens.extend(word_tokenize("".join(run)))
                run = []
            tokens.append(char)
        else:
            run.append(char)
    if run:
        tokens.extend(word_tokenize("".join(run)))
    return tokens


def longest_common_run(first: Sequence[str], second: Sequence[str]) -> int:
    """Return the length of the longest run of tokens that both sequences contain.

    Dynamic programming over the longest common suffix of every pair of prefixes, as the
    official `find_lcs`. The run must be contiguous in both sequences.

    >>> longest_common_run(list("北京大学"), list("大学北京"))
    2
    """
    best = 0
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0] * (len(second) + 1)
        for index, other in enumerate(second):
            if token == other:
                current[index + 1] = previous[index] + 1
                best = max(best, current[index + 1])
        previous = current
    return best


def exact_match(references: Sequence[Any], prediction: Any) -> int:
    """Return 1 when the normalised prediction equals a normalised reference, else 0.

    >>> exact_match(["北京"], "北京，")
    1
    >>> exact_match(["北京"], "北京,")
    0
    """
    predicted = normalize_answer(prediction)
    return int(any(normalize_answer(reference) == predicted for reference in references))


def f1_score(references: Sequence[Any], prediction: Any) -> float:
    """Return the best token F1 of the prediction against any reference.

    Raises ValueError when `references` is empty, where the official scorer crashes.

    >>> f1_score(["北京"], "北京,")
    0.8
    >>> f1_score(["北京大学"], "大学北京")
    0.5
    >>> f1_score(["1862年", "1862"], "1862")
    1.0
    """
    if not references:
        raise ValueError("a question needs at least one reference answer to score F1")
    predicted = segment(prediction)

    scores = []
    for reference in references:
        expected = segment(reference)
        common = longest_common_run(expected, predicted)
        if common == 0:
            scores.append(0.0)
            continue
        precision = common / len(predicted)
        recall = common / len(expected)
        scores.append(2 * precision * recall / (precision + recall))
    return max(scores)


def prediction_index(predictions: Mapping[Any, Any]) -> dict[str, Any]:
    """Key predictions by `str(id)`, raising ValueError when two ids give the same string."""
    index: dict[str, Any] = {}
    for key, value in predictions.items():
        text = str(key)
        if text in index:
            raise ValueError(f"two predictions have question id {text!r}. Keep one of them")
        index[text] = value
    return index


def corpus_scores(
    gold: Iterable[tuple[Any, Sequence[Any]]], predictions: Mapping[Any, Any]
) -> CmrcScores:
    """Score predictions against every gold question, as the official scorer's `evaluate`.

    `gold` lists (question id, reference answers) in gold-file order. The sums run in that
    order, so the floats equal the official script's. A gold id is compared after `str()`
    and stripping the ends, a prediction's id after `str()`.

    >>> scores = corpus_scores(
    ...     [("DEV_0_QUERY_0", ["北京"]), ("DEV_0_QUERY_1", ["1862年", "1862"])],
    ...     {"DEV_0_QUERY_0": "北京，"},
    ... )
    >>> (scores.em, scores.f1, scores.total, scores.unanswered)
    (50.0, 50.0, 2, ('DEV_0_QUERY_1',))
    """
    by_id = prediction_index(predictions)

    em_sum = 0
    f1_sum = 0.0
    total = 0
    unanswered = []
    for question_id, references in gold:
        total += 1
        key = str(question_id).strip()
        if key not in by_id:
            unanswered.append(key)
            continue
        if not references:
            raise ValueError(f"question {key} has no reference answer, so it cannot be scored")
        prediction = str(by_id[key])
        f1_sum += f1_score(references, prediction)
        em_sum += exact_match(references, prediction)

    if total == 0:
        raise ValueError("the gold data contains no question, so EM and F1 are undefined")
    if unanswered:
        logger.warning(
            "%d of %d questions have no prediction and score 0 (first: %s)",
            len(unanswered),
            total,
            ", ".join(unanswered[:5]),
        )
    return CmrcScores(
        em=100.0 * em_sum / total,
        f1=100.0 * f1_sum / total,
        total=total,
        unanswered=tuple(unanswered),
    )
