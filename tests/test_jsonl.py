"""Tests for JSON-lines reading: line numbers, byte order marks and line separators."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from harness.data.jsonl import read_json, read_jsonl, sha256_file
from harness.errors import DataError


def write_bytes(tmp_path: Path, content: bytes, name: str = "data.json") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def write_text(tmp_path: Path, content: str, name: str = "data.json") -> Path:
    return write_bytes(tmp_path, content.encode("utf-8"), name)


def test_read_jsonl_keeps_line_numbers(tmp_path):
    path = write_text(tmp_path, '{"a": 1}\n\n{"a": 2}\n')

    records = read_jsonl(path)

    assert [record.line for record in records] == [1, 3]
    assert [record.data for record in records] == [{"a": 1}, {"a": 2}]


def test_trailing_comma_names_line_two(tmp_path):
    path = write_text(tmp_path, '{"a": 0}\n{"a": 1,}\n{"a": 2}\n')

    with pytest.raises(DataError) as caught:
        read_jsonl(path)

    assert caught.value.line == 2
    assert f"{path}:2" in str(caught.value)
    assert str(path) == caught.value.path


def test_final_blank_line_is_accepted(tmp_path):
    path = write_text(tmp_path, '{"a": 1}\n{"a": 2}\n\n')

    records = read_jsonl(path)

    assert [record.data["a"] for record in records] == [1, 2]


def test_missing_final_newline_is_accepted(tmp_path):
    path = write_text(tmp_path, '{"a": 1}\n{"a": 2}')

    records = read_jsonl(path)

    assert [record.line for record in records] == [1, 2]


def test_whitespace_only_line_is_skipped(tmp_path):
    path = write_text(tmp_path, '{"a": 1}\n   \t\n{"a": 2}\n')

    records = read_jsonl(path)

    assert [record.line for record in records] == [1, 3]


def test_crlf_line_endings_are_accepted(tmp_path):
    path = write_text(tmp_path, '{"a": 1}\r\n{"a": 2}\r\n')

    records = read_jsonl(path)

    assert [record.data["a"] for record in records] == [1, 2]


def test_byte_order_mark_is_accepted(tmp_path):
    path = write_bytes(tmp_path, codecs.BOM_UTF8 + '{"a": "是"}\n'.encode())

    records = read_jsonl(path)

    assert records[0].data == {"a": "是"}
    assert records[0].line == 1


def test_line_separator_does_not_split_record(tmp_path):
    path = write_text(tmp_path, '{"s": "上一句\u2028下一句"}\n{"s": "x\u2029y\u0085z"}\n')

    records = read_jsonl(path)

    assert len(records) == 2
    assert records[0].data["s"] == "上一句\u2028下一句"
    assert records[1].line == 2


def test_json_array_line_is_rejected(tmp_path):
    path = write_text(tmp_path, '{"a": 1}\n{"a": 2}\n[1, 2]\n')

    with pytest.raises(DataError) as caught:
        read_jsonl(path)

    assert caught.value.line == 3
    assert f"{path}:3" in str(caught.value)
    assert "expected a JSON object, found list" in str(caught.value)


def test_json_string_line_is_rejected(tmp_path):
    path = write_text(tmp_path, '"text"\n')

    with pytest.raises(DataError) as caught:
        read_jsonl(path)

    assert caught.value.line == 1
    assert "found str" in str(caught.value)


def test_invalid_utf8_names_line(tmp_path):
    path = write_bytes(tmp_path, b'{"a": 1}\n{"a": 2}\n{"a": "\xff"}\n')

    with pytest.raises(DataError) as caught:
        read_jsonl(path)

    assert caught.value.line == 3
    assert f"{path}:3" in str(caught.value)
    assert "invalid UTF-8 at byte 25" in str(caught.value)


def test_invalid_utf8_after_bom_names_line(tmp_path):
    # The invalid byte opens line 2, within three bytes of the newline, so an offset that
    # forgot the byte order mark would count it on line 1.
    path = write_bytes(tmp_path, codecs.BOM_UTF8 + b'{"a": 1}\n\xff\n')

    with pytest.raises(DataError) as caught:
        read_jsonl(path)

    assert caught.value.line == 2
    assert "invalid UTF-8 at byte 12" in str(caught.value)


def test_missing_file_is_data_error(tmp_path):
    path = tmp_path / "absent.json"

    with pytest.raises(DataError) as caught:
        read_jsonl(path)

    assert caught.value.line is None
    assert str(caught.value) == f"{path}: file not found"


def test_empty_file_has_no_records(tmp_path):
    path = write_text(tmp_path, "\n\n")

    assert read_jsonl(path) == []


def test_read_json_names_error_line(tmp_path):
    path = write_text(tmp_path, '{\n  "a": 1,\n}\n')

    with pytest.raises(DataError) as caught:
        read_json(path)

    assert caught.value.line == 3


def test_read_json_returns_document(tmp_path):
    path = write_bytes(tmp_path, codecs.BOM_UTF8 + b'{"TEST_0_QUERY_0": "x"}')

    assert read_json(path) == {"TEST_0_QUERY_0": "x"}


def test_sha256_file_matches_known_digest(tmp_path):
    path = write_bytes(tmp_path, b"abc")

    digest = sha256_file(path)

    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
