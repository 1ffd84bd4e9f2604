"""Decoding per-character BIO, BIOES and BMES tags into entity spans with inclusive ends.

A tag is `<prefix>-<type>`, where the prefix is one of B (begin), I or M (inside), E (end)
and S (single). `O` and every other label, such as "X" or "[START]", are outside any
entity. The rules:

- B starts an entity, S is a one-character entity, O closes the open entity.
- I and M continue an open entity of the same type. Otherwise they start a new one, the
  usual lenient reading of an I without its B.
- E continues an open entity of the same type and closes it. Otherwise it is a
  one-character entity, by the same lenient rule.
- An entity that a BIOES model leaves without its E ends at its last I or M.
- A character with no tag (None: whitespace that the tokenizer drops) changes nothing, so
  an entity can run across it but never starts or ends on it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.backends.base import EntitySpan

TAG = re.compile(r"^([BIMES])[-_](.+)$")
OUTSIDE = ("O", "")


def parse_tag(label: str) -> tuple[str, str]:
    """Split a tag into (prefix, entity type), or ("O", "") for a label that is no entity tag.

    >>> parse_tag("B-name"), parse_tag("I_organization"), parse_tag("O"), parse_tag("[START]")
    (('B', 'name'), ('I', 'organization'), ('O', ''), ('O', ''))
    """
    match = TAG.match(label)
    if match is None:
        return OUTSIDE
    return match.group(1), match.group(2)


def decode_entities(text: str, tags: Sequence[str | None]) -> list[EntitySpan]:
    """Decode one tag per character of `text` into entities with inclusive end offsets.

    >>> spans = decode_entities("王小明在北京大学", ["B-name", "I-name", "I-name", "O",
    ...                                              "B-org", "I-org", "I-org", "I-org"])
    >>> [(span.type, span.start, span.end, span.text) for span in spans]
    [('name', 0, 2, '王小明'), ('org', 4, 7, '北京大学')]
    """
    if len(tags) != len(text):
        raise ValueError(f"got {len(tags)} tags for a text of {len(text)} characters")

    spans: list[EntitySpan] = []
    open_type: str | None = None
    open_start = open_end = 0

    def close() -> None:
        nonlocal open_type
        if open_type is not None:
            spans.append(
                EntitySpan(open_type, open_start, open_end, text[open_start : open_end + 1])
            )
        open_type = None

    for position, tag in enumerate(tags):
        if tag is None:
            continue
        prefix, kind = parse_tag(tag)
        continues = open_type == kind and prefix in ("I", "M", "E")

        if prefix == "O":
            close()
            continue
        if continues:
            open_end = position
        else:
            close()
            open_type, open_start, open_end = kind, position, position
        if prefix in ("E", "S"):
            close()

    close()
    return spans
