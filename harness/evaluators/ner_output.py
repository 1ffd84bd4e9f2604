"""Reading entities out of a causal LM's generated text, leniently and without crashing.

Rules, applied in order:
1. A Markdown code fence (```json ... ```) is unwrapped: only its content is read.
2. The first JSON object or array in the text is cut out by bracket matching, so prose
   before or after it is ignored. An unclosed value (generation cut at max_new_tokens) is
   closed as far as its open brackets allow.
3. It is parsed as JSON. When that fails, it is parsed as a Python literal with
   `ast.literal_eval`, which accepts single quotes and trailing commas, after null, true
   and false are mapped to Python. When that fails too, trailing commas are removed and
   JSON is tried once more.
4. Accepted shapes: `{type: [entity, ...]}`, `{type: entity}`, the CLUENER shape
   `{type: {entity: offsets}}`, and a list of `{"type": ..., "entity": ...}` objects or of
   `[type, entity]` pairs. Types may be written as the English id or the Chinese name.
5. Entities of unknown types, and entities that do not occur in the text, are dropped
   and counted; they never fail the line.

A line whose output holds no parseable value of an accepted shape is a parse failure: it
predicts no entities, and the failure is counted and reported with its reason.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FENCE = re.compile(r"```[A-Za-z]*\s*\n?(.*?)(?:```|$)", re.DOTALL)
TRAILING_COMMA = re.compile(r",\s*([}\]])")
TYPE_KEYS = ("type", "label", "category", "类型", "类别")
ENTITY_KEYS = ("entity", "text", "name", "value", "word", "实体", "名称")
CLOSERS = {"{": "}", "[": "]"}


@dataclass
class ParsedOutput:
    """Entities read from one output, with `failure` giving the reason when none could be read."""

    entities: dict[str, list[str]] = field(default_factory=dict)
    failure: str | None = None
    dropped: int = 0


def _unfence(text: str) -> str:
    match = FENCE.search(text)
    return match.group(1) if match else text


def cut_value(text: str) -> str | None:
    """Return the first JSON object or array in `text`, closing it if generation stopped early.

    >>> cut_value('答：{"name": ["张伟"]} 以上')
    '{"name": ["张伟"]}'
    >>> cut_value('{"name": ["张伟", "李')
    '{"name": ["张伟", "李"]}'
    """
    starts = [index for index in (text.find("{"), text.find("[")) if index >= 0]
    if not starts:
        return None
    start = min(starts)
    stack: list[str] = []
    quote = None
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            continue
        if char in "\"'":
            quote = char
        elif char in CLOSERS:
            stack.append(CLOSERS[char])
        elif char in "}]":
            if not stack or stack[-1] != char:
                return None
            stack.pop()
            if not stack:
                return text[start : index + 1]
    tail = quote or ""
    return text[start:].rstrip() + tail + "".join(reversed(stack))


def _load(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    python_text = re.sub(r"\bnull\b", "None", value)
    python_text = re.sub(r"\btrue\b", "True", python_text)
    python_text = re.sub(r"\bfalse\b", "False", python_text)
    try:
        return ast.literal_eval(python_text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    return json.loads(TRAILING_COMMA.sub(r"\1", value))


def _pairs(data: Any) -> list[tuple[Any, Any]] | None:
    """Flatten an accepted shape into (type, entity) pairs, or None for any other shape."""
    pairs: list[tuple[Any, Any]] = []
    if isinstance(data, dict):
        for kind, value in data.items():
            if isinstance(value, str):
                pairs.append((kind, value))
            elif isinstance(value, (list, tuple)):
                pairs.extend((kind, item) for item in value)
            elif isinstance(value, dict):
                pairs.extend((kind, item) for item in value)
            elif value is not None:
                return None
        return pairs
    if isinstance(data, (list, tuple)):
        for item in data:
            if isinstance(item, dict):
                kind = next((item[key] for key in TYPE_KEYS if key in item), None)
                entity = next((item[key] for key in ENTITY_KEYS if key in item), None)
                if kind is None or entity is None:
                    return None
                pairs.append((kind, entity))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                pairs.append((item[0], item[1]))
            else:
                return None
        return pairs
    return None


def type_aliases(types: Mapping[str, str]) -> dict[str, str]:
    """Map each way of writing a type (id, lowercase id, Chinese name) to its id."""
    aliases = {}
    for type_id, chinese in types.items():
        aliases[type_id] = type_id
        aliases[type_id.lower()] = type_id
        aliases[chinese] = type_id
    return aliases


def parse_entities(output: str, text: str, aliases: Mapping[str, str]) -> ParsedOutput:
    """Read `{type: [entity, ...]}` from a generated output for the sentence `text`.

    >>> aliases = {"name": "name", "人名": "name"}
    >>> parse_entities("```json\\n{'人名': ['张伟', '王五'],}\\n```", "张伟说", aliases)
    ParsedOutput(entities={'name': ['张伟']}, failure=None, dropped=1)
    >>> parse_entities("没有实体", "张伟说", aliases).failure
    'no JSON object or array in the output'
    """
    value = cut_value(_unfence(output))
    if value is None:
        return ParsedOutput(failure="no JSON object or array in the output")
    try:
        data = _load(value)
    except (json.JSONDecodeError, RecursionError) as error:
        return ParsedOutput(failure=f"invalid JSON: {error}")
    pairs = _pairs(data)
    if pairs is None:
        return ParsedOutput(failure=f"unexpected shape: {value[:60]}")

    result = ParsedOutput()
    for kind, entity in pairs:
        type_id = aliases.get(str(kind).strip()) or aliases.get(str(kind).strip().lower())
        entity = str(entity).strip() if isinstance(entity, (str, int, float)) else ""
        if type_id is None or not entity or entity not in text:
            result.dropped += 1
            continue
        found = result.entities.setdefault(type_id, [])
        if entity not in found:
            found.append(entity)
    return result


def locate(text: str, entity: str) -> list[list[int]]:
    """Return the inclusive [start, end] offsets of every non-overlapping occurrence.

    >>> locate("张伟和张伟", "张伟")
    [[0, 1], [3, 4]]
    """
    offsets = []
    start = text.find(entity)
    while start >= 0 and entity:
        offsets.append([start, start + len(entity) - 1])
        start = text.find(entity, start + len(entity))
    return offsets
