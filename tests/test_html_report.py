"""report.html: a self-contained page (no URL, script or external resource) that parses as
HTML and contains one chart per case with its score, interval, threshold and baseline."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from fake_classifier import ScriptedClassifier, write_afqmc

from harness.backends import BACKENDS
from harness.html_report import render_html
from harness.reports import report_rows
from harness.results import CaseResult

TEST_MODULE = """
import pytest


@pytest.mark.clue_spec("clue.yaml")
def test_clue(clue_case, clue_evaluate):
    clue_evaluate(clue_case)
"""

SPEC = """
data_root: data
baseline: baseline.json
models:
  fake:
    backend: hf-classifier
    path: fake-model
    options: {{wrong: {wrong}}}
cases:
  - id: gated
    task: afqmc
    split: dev
    model: fake
    gate:
      - {{kind: no_regression, metric: accuracy}}
      - {{kind: lower_bound, metric: accuracy, threshold: 0.5}}
  - id: floor
    task: afqmc
    split: dev
    model: fake
    limit: 40
    thresholds: {{accuracy: 0.9, macro_f1: 0.5}}
"""
VOID_ELEMENTS = {"meta", "br", "img", "link", "input", "hr"}
SVG_LEAVES = {"line", "rect", "circle", "polygon"}


class StrictParser(HTMLParser):
    """Record elements with their attributes; fail on a closing tag that does not match."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag not in VOID_ELEMENTS:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()


def parse(text: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(text)
    parser.close()
    return parser


def charts(parser: StrictParser) -> list[dict]:
    return [
        attrs
        for tag, attrs in parser.elements
        if tag == "svg" and attrs.get("class") == "case-chart"
    ]


@pytest.fixture
def page(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> str:
    """Record a baseline, score a degraded model against it, and return report.html."""
    monkeypatch.setitem(
        BACKENDS, "hf-classifier", f"{ScriptedClassifier.__module__}:ScriptedClassifier"
    )
    pytester.makepyfile(test_evals=TEST_MODULE)
    write_afqmc(pytester.path / "data", 100)
    for wrong, options in ((list(range(80, 100)), ["--update-baseline"]), (list(range(40)), [])):
        (pytester.path / "clue.yaml").write_text(SPEC.format(wrong=json.dumps(wrong)))
        pytester.runpytest_inprocess("-p", "no:cacheprovider", "--clue-output=out", *options)
    return (pytester.path / "out" / "report.html").read_text(encoding="utf-8")


def test_page_has_no_urls(page):
    lowered = page.lower()

    assert "http://" not in lowered
    assert "https://" not in lowered
    assert "<script" not in lowered
    assert "src=" not in lowered
    assert "url(" not in lowered


def test_page_parses_balanced(page):
    parser = parse(page)

    assert parser.open == []
    assert parser.elements[0][0] == "html"


def test_one_chart_per_case(page):
    found = charts(parse(page))

    assert [attrs["data-case"] for attrs in found] == ["gated", "floor"]


def test_chart_draws_each_part(page):
    parser = parse(page)
    classes = [attrs.get("class") for tag, attrs in parser.elements if tag in SVG_LEAVES]

    # gated: two rows (no_regression, lower_bound), one threshold, two baseline markers;
    # floor: two rows (accuracy, macro_f1), two thresholds, two baseline markers.
    assert classes.count("score") == 4
    assert classes.count("interval") == 4
    assert classes.count("threshold") == 3
    assert classes.count("baseline") == 4


def test_page_shows_failed_gate(page):
    assert "no_regression gate" in page
    assert "NaN" not in page


def test_chart_for_unscored_case():
    scored = CaseResult(
        case_id="scored",
        task="afqmc",
        benchmark="clue",
        split="dev",
        model="m",
        method="classifier",
        tier="smoke",
        shots=0,
        seed=1,
        main_metric="accuracy",
        metrics={"accuracy": 0.5},
    )
    broken = CaseResult(**{**scored.__dict__, "case_id": "broken", "metrics": {}, "error": "boom"})
    predicted = CaseResult(**{**scored.__dict__, "case_id": "predicted", "metrics": {}})

    text = render_html([scored, broken, predicted], report_rows([scored, broken, predicted]))

    parser = parse(text)
    assert [attrs["data-case"] for attrs in charts(parser)] == ["scored", "broken", "predicted"]
    assert parser.open == []
    assert "no score: this case only predicts (hidden labels)" in text
