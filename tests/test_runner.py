"""CaseRunner with fake backends: submissions, predictions, subsets, thresholds, few-shot."""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from tiny_models import FIXTURES

from harness.backends.base import (
    Backend,
    ChoiceRequest,
    ChoiceScores,
    ModelConfig,
    NoProgress,
    Progress,
)
from harness.errors import BackendError, DataError
from harness.runner import CaseRunner, map_head_labels
from harness.spec import CaseConfig
from harness.tasks import get_task

DATA_ROOT = FIXTURES / "clue"
TNEWS_IDS = ["100", "101", "102", "103", "104", "106", "107", "108"]
TNEWS_IDS += ["109", "110", "112", "113", "114", "115", "116"]


def checksum_choice(context: str, count: int) -> int:
    """Pick a choice from the prompt text alone, so that the expected answer is reproducible."""
    return zlib.crc32(context.encode("utf-8")) % count


class FakeLM(Backend):
    """A log-likelihood backend that scores choice `choose(context, count)` 0.0, others -1.0.

    Like a real backend, it computes the longest contexts first and returns the scores in
    request order. `computed` lists the contexts in the order they were scored.
    """

    kind = "fake-lm"

    def __init__(self, choose: Callable[[str, int], int] = checksum_choice) -> None:
        super().__init__(ModelConfig(name="fake", backend="hf-causal", path="fake"))
        self.choose = choose
        self.requests: list[ChoiceRequest] = []
        self.computed: list[str] = []

    def loglikelihood(
        self, requests: Sequence[ChoiceRequest], progress: Progress = NoProgress()
    ) -> list[ChoiceScores]:
        self.requests = list(requests)
        order = sorted(range(len(requests)), key=lambda index: -len(requests[index].context))
        results: list[ChoiceScores | None] = [None] * len(requests)
        for index in order:
            request = requests[index]
            self.computed.append(request.context)
            count = len(request.continuations)
            best = self.choose(request.context, count)
            scores = tuple(0.0 if choice == best else -1.0 for choice in range(count))
            results[index] = ChoiceScores(scores, (1,) * count)
        progress.advance(len(requests))
        return results  # type: ignore[return-value]


class FakeClassifier(Backend):
    """A classifier with the given head labels, whose winning output is `predict(text)`."""

    kind = "fake-classifier"

    def __init__(self, labels: list[str], predict: Callable[[str], int]) -> None:
        super().__init__(ModelConfig(name="fake", backend="hf-classifier", path="fake"))
        self.labels = labels
        self.predict = predict

    @property
    def head_labels(self) -> list[str]:
        return self.labels

    def classify(
        self, texts: Sequence[tuple[str, str | None]], progress: Progress = NoProgress()
    ) -> list[list[float]]:
        logits = []
        for text, _ in texts:
            row = [0.0] * len(self.labels)
            row[self.predict(text)] = 1.0
            logits.append(row)
        return logits


def make_case(task: str, split: str, **settings) -> CaseConfig:
    values = {
        "id": f"{task}-{split}-fake",
        "task": task,
        "split": split,
        "model": "fake",
        "method": "loglikelihood",
        "spec_path": "spec.yaml",
        "tier": "full" if split.startswith("test") and split != "test_public" else "smoke",
    }
    return CaseConfig(**{**values, **settings})


def read_rows(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8-sig")
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    "head",
    [
        TNEWS_IDS,
        [label.name for label in get_task("tnews").labels],
        [label.verbalizer for label in get_task("tnews").labels],
    ],
    ids=["ids", "english-names", "chinese-names"],
)
def test_head_labels_map_to_ids(head):
    mapped = map_head_labels(get_task("tnews"), head, "fake")

    assert [mapped[index] for index in (0, 5, 10, 14)] == ["100", "106", "112", "116"]


@pytest.mark.parametrize("missing", ["105", "111"])
def test_unknown_head_label_rejected(missing):
    head = [*TNEWS_IDS[:5], missing, *TNEWS_IDS[6:]]

    with pytest.raises(BackendError, match=f"head output 5 is labelled '{missing}'"):
        map_head_labels(get_task("tnews"), head, "fake")


SUBMISSIONS = [
    ("afqmc", "test", "afqmc/test.json", "clue-fake/afqmc_predict.json", int),
    ("ocnli", "test", "ocnli/test.json", "clue-fake/ocnli_50k_predict.json", int),
    ("fewclue-tnews", "test", "fewclue/tnews/test.json", "fewclue-fake/tnewsf_predict.json", str),
]


@pytest.mark.parametrize(
    ("task_name", "split", "data_file", "submission", "id_type"),
    SUBMISSIONS,
    ids=[row[0] for row in SUBMISSIONS],
)
def test_submission_follows_test_file(tmp_path, task_name, split, data_file, submission, id_type):
    task = get_task(task_name)
    rows = read_rows(DATA_ROOT / data_file)
    prompts = [task.prompt.format(**row) for row in rows]
    backend = FakeLM()

    result = CaseRunner(DATA_ROOT, tmp_path).run(make_case(task_name, split), backend)

    # The fake scored the longest prompts first, so the runner must restore file order.
    assert backend.computed != prompts
    assert result.submission_file == str(tmp_path / "submission" / submission)
    lines = read_lines(Path(result.submission_file))
    assert len(lines) == len(rows)
    for line, row, prompt in zip(lines, rows, prompts):
        assert line["id"] == row["id"]
        assert type(line["id"]) is id_type
        assert line["label"] == task.label_ids[checksum_choice(prompt, len(task.labels))]
    assert result.metrics == {}


def test_submission_keeps_raw_id_text(tmp_path):
    CaseRunner(DATA_ROOT, tmp_path).run(make_case("fewclue-tnews", "test"), FakeLM())

    text = (tmp_path / "submission" / "fewclue-fake" / "tnewsf_predict.json").read_text()
    assert text.splitlines()[0].startswith('{"id": "0", ')


def test_classifier_submission_uses_task_ids(tmp_path):
    rows = read_rows(DATA_ROOT / "tnews" / "test.json")
    predicted_indices = [0, 5, 10, 14]
    by_sentence = {row["sentence"]: predicted_indices[index % 4] for index, row in enumerate(rows)}
    backend = FakeClassifier(TNEWS_IDS, lambda text: by_sentence[text])
    case = make_case("tnews", "test", method="classifier")

    result = CaseRunner(DATA_ROOT, tmp_path).run(case, backend)

    lines = read_lines(Path(result.submission_file))
    expected = [["100", "106", "112", "116"][index % 4] for index in range(len(rows))]
    assert [line["label"] for line in lines] == expected
    assert Path(result.submission_file).name == "tnews11_predict.json"


def test_predictions_one_record_per_example(tmp_path):
    task = get_task("ocnli")
    rows = read_rows(DATA_ROOT / "ocnli" / "dev.json")
    backend = FakeLM()

    result = CaseRunner(DATA_ROOT, tmp_path, full_tier=True).run(make_case("ocnli", "dev"), backend)

    records = read_lines(Path(result.predictions_file))
    assert result.predictions_file == str(tmp_path / "predictions" / "ocnli-dev-fake.jsonl")
    assert len(records) == 10
    assert [record["id"] for record in records] == [row["id"] for row in rows]
    assert [record["line"] for record in records] == list(range(1, 11))
    expected = [task.label_ids[checksum_choice(task.prompt.format(**row), 3)] for row in rows]
    assert [record["prediction"] for record in records] == expected
    # The "-" row has no gold label, so it is left out of the metrics.
    assert records[3]["gold"] is None
    assert result.n_scored == 9
    assert result.n_skipped == 1


def test_smoke_tier_subset_is_stable(tmp_path):
    case = make_case("afqmc", "dev", smoke_size=6, seed=1234)

    first = CaseRunner(DATA_ROOT, tmp_path / "first").run(case, FakeLM())
    second = CaseRunner(DATA_ROOT, tmp_path / "second").run(case, FakeLM())

    first_records = read_lines(Path(first.predictions_file))
    second_records = read_lines(Path(second.predictions_file))
    assert first.n_selected == 6
    assert first.tier == "smoke"
    assert Counter(record["gold"] for record in first_records) == {"0": 3, "1": 3}
    assert [record["id"] for record in first_records] == [record["id"] for record in second_records]


def test_full_tier_scores_every_row(tmp_path):
    case = make_case("afqmc", "dev", smoke_size=6)

    result = CaseRunner(DATA_ROOT, tmp_path, full_tier=True).run(case, FakeLM())

    assert result.n_selected == 12
    assert result.tier == "full"


def test_threshold_miss_records_failure(tmp_path):
    case = make_case("afqmc", "dev", thresholds={"accuracy": 0.9, "macro_f1": 0.3})
    always_first = FakeLM(lambda context, count: 0)

    result = CaseRunner(DATA_ROOT, tmp_path, full_tier=True).run(case, always_first)

    # Half of the 12 dev rows are labelled "0", and "0" is the first choice.
    assert result.metrics["accuracy"] == 0.5
    assert result.failures == ["accuracy 0.5000 < threshold 0.9000"]
    assert not result.passed


def test_threshold_met_records_nothing(tmp_path):
    case = make_case("afqmc", "dev", thresholds={"accuracy": 0.5})
    always_first = FakeLM(lambda context, count: 0)

    result = CaseRunner(DATA_ROOT, tmp_path, full_tier=True).run(case, always_first)

    assert result.failures == []
    assert result.passed


def test_fewshot_prompt_lists_shots_first(tmp_path):
    task = get_task("afqmc")
    words = {"0": "不同", "1": "相同"}
    train_rows = read_rows(DATA_ROOT / "afqmc" / "train.json")
    rendered_shots = {task.prompt.format(**row) + words[row["label"]] for row in train_rows}
    queries = [task.prompt.format(**row) for row in read_rows(DATA_ROOT / "afqmc" / "dev.json")]
    backend = FakeLM()

    CaseRunner(DATA_ROOT, tmp_path, full_tier=True).run(
        make_case("afqmc", "dev", shots=2, seed=7), backend
    )

    contexts = [request.context for request in backend.requests]
    parts = [context.split("\n\n") for context in contexts]
    assert {len(part) for part in parts} == {3}
    assert [part[2] for part in parts] == queries
    assert {tuple(part[:2]) for part in parts} == {tuple(parts[0][:2])}
    assert parts[0][0] in rendered_shots
    assert parts[0][1] in rendered_shots
    assert parts[0][0] != parts[0][1]


def test_missing_data_file_names_paths(tmp_path):
    root = tmp_path / "data"
    root.mkdir()

    with pytest.raises(DataError) as raised:
        CaseRunner(root, tmp_path / "out").run(make_case("afqmc", "dev"), FakeLM())

    message = str(raised.value)
    assert str(root / "afqmc" / "dev.json") in message
    assert str(root / "afqmc_public" / "dev.json") in message
