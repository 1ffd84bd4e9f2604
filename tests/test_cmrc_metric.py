"""CMRC2018 EM and F1 as the official scorer computes them, and NLTK's tokens offline."""

from __future__ import annotations

import doctest
from pathlib import Path

import nltk
import nltk.tokenize
import pytest
from hypothesis import given
from hypothesis import strategies as st

import harness.metrics.cmrc
import harness.metrics.word_tokens
from harness.errors import HarnessError
from harness.metrics.cmrc import (
    PUNCTUATION_LIST,
    corpus_scores,
    exact_match,
    f1_score,
    normalize_answer,
    segment,
)
from harness.metrics.word_tokens import (
    TABLES_SHA256,
    english_punkt_parameters,
    tables_digest,
    word_tokenize,
)
from harness.tasks import get_task
from harness.tasks.cmrc import load_squad

REAL_DATA = Path("/work/shared/data/clue/cmrc2018")

# Strings where NLTK's sentence splitting, abbreviations, quotes or dashes change the tokens.
TRICKY_TEXTS = [
    "done. next",
    "hello mr. smith. how are you? i am fine.",
    "u.s. army. the end",
    '"quote." "next"',
    "e.g. this. and that! ok? yes",
    "1—2 and a--b",
    "it's 'ok' isn't it.",
    "v1.0. v2.0",
    "  spaced   out.  ",
    "(a.) b.",
]


def real_file(name: str) -> Path:
    path = REAL_DATA / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"real CMRC2018 data not found at {path}")
    return path


def real_references() -> list[str]:
    task = get_task("cmrc2018")
    references = []
    for split in ("dev", "trial"):
        loaded = load_squad(task, split, real_file(split))
        references.extend(text for question in loaded.questions for text in question.references)
    return references


def fresh_parameters():
    """Load the Punkt tables again, bypassing the cache.

    Punkt looks words up in a defaultdict, so tokenising adds zero entries to the cached
    `ortho_context`.
    """
    return english_punkt_parameters.__wrapped__()


@pytest.fixture
def nltk_with_tables(tmp_path, monkeypatch):
    """Point NLTK's own data loader at a punkt_tab folder holding the bundled tables.

    `nltk.word_tokenize` then runs exactly as with `nltk.download("punkt_tab")` done.
    """
    parameters = fresh_parameters()
    folder = tmp_path / "tokenizers" / "punkt_tab" / "english"
    folder.mkdir(parents=True)
    files = {
        "abbrev_types.txt": sorted(parameters.abbrev_types),
        "sent_starters.txt": sorted(parameters.sent_starters),
        "collocations.tab": sorted("\t".join(pair) for pair in parameters.collocations),
        "ortho_context.tab": [
            f"{word}\t{flags}" for word, flags in sorted(parameters.ortho_context.items())
        ],
    }
    for name, lines in files.items():
        (folder / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    nltk.tokenize._get_punkt_tokenizer.cache_clear()
    yield nltk.word_tokenize
    nltk.tokenize._get_punkt_tokenizer.cache_clear()


# Worked examples


def test_fullwidth_comma_is_dropped():
    assert exact_match(["北京"], "北京，") == 1
    assert f1_score(["北京"], "北京，") == 1.0


def test_ascii_comma_is_kept():
    assert exact_match(["北京"], "北京,") == 0
    assert f1_score(["北京"], "北京,") == 0.8


def test_best_reference_wins():
    assert exact_match(["1862年", "1862"], "1862") == 1
    assert f1_score(["1862年", "1862"], "1862") == 1.0


def test_f1_needs_contiguous_run():
    # A bag-of-characters F1 would give 1.0: all four characters are shared.
    assert f1_score(["北京大学"], "大学北京") == 0.5


def test_f1_partial_overlap():
    assert f1_score(["中文"], "学中文") == 0.8


def test_disjoint_answers_score_zero():
    assert exact_match(["北京"], "上海") == 0
    assert f1_score(["北京"], "上海") == 0.0


def test_internal_space_breaks_em_only():
    assert exact_match(["北京大学"], "北京 大学") == 0
    assert f1_score(["北京大学"], "北京 大学") == 1.0


def test_blank_prediction_em_without_f1():
    # Both normalise to "", which EM accepts, but neither has a token for F1.
    assert exact_match(["-"], "") == 1
    assert f1_score(["-"], "") == 0.0


def test_punctuation_list_has_33_entries():
    assert len(PUNCTUATION_LIST) == 33
    assert len(set(PUNCTUATION_LIST)) == 33


def test_two_char_ellipsis_never_matches():
    assert normalize_answer("北京……") == "北京……"
    assert normalize_answer("（北京）") == "北京"


def test_english_runs_use_nltk_tokens():
    assert segment("约78.1km") == ["约", "78.1km"]
    assert segment("光荣和ω-force") == ["光", "荣", "和", "ωforce"]
    assert segment("ABC. 公司") == ["abc", ".", "公", "司"]


def test_lowercase_follows_python2():
    # Python 3's str.lower() would give a final sigma and "i" plus a combining dot.
    assert normalize_answer("ΣΑΣ") == "σασ"
    assert normalize_answer("İ") == "i"


def test_predictions_compared_as_text():
    assert exact_match(["1862"], 1862) == 1
    assert f1_score(["1862"], 1862) == 1.0


def test_empty_references_are_rejected():
    with pytest.raises(ValueError, match="at least one reference"):
        f1_score([], "北京")


# Corpus scores


def test_missing_question_scores_zero():
    gold = [("DEV_0_QUERY_0", ["北京"]), ("DEV_0_QUERY_1", ["上海"])]

    scores = corpus_scores(gold, {"DEV_0_QUERY_0": "北京"})

    assert scores.em == 50.0
    assert scores.f1 == 50.0
    assert scores.total == 2
    assert scores.unanswered == ("DEV_0_QUERY_1",)


def test_question_ids_compare_as_strings():
    gold = [(1, ["北京"]), (" 2 ", ["上海"])]

    scores = corpus_scores(gold, {"1": "北京", 2: "上海"})

    assert scores.em == 100.0
    assert scores.unanswered == ()


def test_clashing_prediction_ids_rejected():
    with pytest.raises(ValueError, match="two predictions have question id '1'"):
        corpus_scores([("1", ["北京"])], {1: "北京", "1": "上海"})


def test_corpus_averages_over_questions():
    gold = [("a", ["北京"]), ("b", ["中文"]), ("c", ["北京大学"])]

    scores = corpus_scores(gold, {"a": "北京", "b": "学中文", "c": "大学北京"})

    assert scores.em == 100.0 / 3
    assert scores.f1 == 100.0 * (1.0 + 0.8 + 0.5) / 3
    assert scores.average == (scores.em + scores.f1) * 0.5


def test_empty_gold_is_rejected():
    with pytest.raises(ValueError, match="contains no question"):
        corpus_scores([], {})


def test_docstring_examples_hold():
    for module in (harness.metrics.cmrc, harness.metrics.word_tokens):
        outcome = doctest.testmod(module)
        assert outcome.attempted > 0, module.__name__
        assert outcome.failed == 0, module.__name__


# Properties

ALPHABET = sorted(set("北京大学中文年月日一二三abcXYZ019 .,?!'\"()…" + "".join(PUNCTUATION_LIST)))
TEXTS = st.text(st.sampled_from(ALPHABET), max_size=12)


@given(st.lists(TEXTS, min_size=1, max_size=3), TEXTS)
def test_scores_stay_in_unit_range(references, prediction):
    em = exact_match(references, prediction)
    f1 = f1_score(references, prediction)

    assert em in (0, 1)
    assert 0.0 <= f1 <= 1.0


@given(st.lists(TEXTS, min_size=1, max_size=3), TEXTS)
def test_em_never_exceeds_f1(references, prediction):
    # EM 1 means equal normalised text and so equal tokens: F1 is 1.0 unless there are none.
    if segment(prediction):
        assert exact_match(references, prediction) <= f1_score(references, prediction)


@given(st.lists(TEXTS, min_size=1, max_size=3), st.data())
def test_reference_as_prediction_matches(references, data):
    prediction = data.draw(st.sampled_from(references))

    assert exact_match(references, prediction) == 1


# NLTK's tokens without the punkt_tab download


def test_dashes_are_split_off():
    # NLTK 3.9.3 and later; NLTK 3.3 to 3.9.2 keep "1—2" as one token.
    assert segment("直径1—2毫米") == ["直", "径", "1", "—", "2", "毫", "米"]


def test_sentence_split_changes_tokens():
    # Without the Punkt split the period would stay on "done", as in "done.".
    assert word_tokenize("done. next") == ("done", ".", "next")


def test_tables_match_pinned_digest():
    parameters = fresh_parameters()

    assert len(parameters.abbrev_types) == 156
    assert len(parameters.sent_starters) == 39
    assert len(parameters.collocations) == 37
    assert len(parameters.ortho_context) == 20366
    digest = tables_digest(
        parameters.abbrev_types,
        parameters.sent_starters,
        parameters.collocations,
        parameters.ortho_context,
    )
    assert digest == TABLES_SHA256


def test_changed_tables_are_rejected(monkeypatch):
    from punkt.data import english

    monkeypatch.setattr(english, "ABBREV_TYPES", english.ABBREV_TYPES | {"cmrc"})

    with pytest.raises(HarnessError, match="differ from NLTK's punkt_tab"):
        english_punkt_parameters.__wrapped__()


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_tokens_equal_nltk_word_tokenize(nltk_with_tables, text):
    assert list(word_tokenize(text)) == nltk_with_tables(text)


def test_real_references_tokenise_as_nltk(nltk_with_tables, monkeypatch):
    references = real_references()
    ours = [segment(text) for text in references]

    monkeypatch.setattr(harness.metrics.cmrc, "word_tokenize", nltk_with_tables)
    theirs = [segment(text) for text in references]

    assert len(references) == 10659
    mismatches = [
        text for text, mine, nltk_tokens in zip(references, ours, theirs) if mine != nltk_tokens
    ]
    assert mismatches == []


def test_real_dev_gold_scores_100():
    loaded = load_squad(get_task("cmrc2018"), "dev", real_file("dev"))
    predictions = {question.id: question.references[0] for question in loaded.questions}

    scores = corpus_scores(loaded.gold(), predictions)

    assert scores.total == 3219
    assert scores.em == 100.0
    assert scores.f1 == 100.0
    assert scores.unanswered == ()
