"""Per-example values of a case, and the statistics that recompute its metrics from them.

Intervals and paired tests resample examples, so every gated metric must be computable
from a subset of rows. Each evaluator stores, in `CaseResult.per_example`, one JSON object:

- `ids`: the example ids (as strings) in scoring order;
- `columns`: named per-example values, each a list with one entry per id (a number or a
  list of numbers). A column of 0/1 outcomes is packed into a string such as "0110";
- `metrics`: for each metric, the statistic that recomputes it, the columns it reads, its
  scale (100 for CMRC2018's EM and F1) and any parameters of the statistic.

Statistics:

| name | rows | value |
|---|---|---|
| `proportion` | a 0/1 column | share of 1s (accuracy); Wilson interval, McNemar test |
| `mean` | one column | mean (EM, F1, mean cosine); bootstrap interval; McNemar for 0/1 |
| `macro_f1` | gold and predicted label indices | macro-F1 over all `labels` classes |
| `ner_macro_f1` | per line, (tp, fp, fn) for each of `types` entity types | CLUENER2020 macro F1 |
| `ner_type_f1` | the same counts, and `type` (an index) | F1 of one entity type |
| `span_micro_f1` | per line, (tp, fp, fn) of (type, start, end) spans | micro-F1 |
| `spearman`, `pearson` | (cosine, gold score) | correlation |
| `average_precision`, `max_accuracy`, `max_f1` | (cosine, 0/1 label) | pair classification |

A statistic that is undefined on a resample (a correlation of constant values) returns NaN,
and the bootstrap drops that resample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.metrics.similarity import (
    UndefinedMetric,
    average_precision,
    best_accuracy,
    best_f1,
    pearson,
    spearman,
)

PerExample = dict[str, Any]


@dataclass(frozen=True)
class Statistic:
    """How to recompute a metric from rows: the function, its interval and its paired test.

    `interval` is "wilson" or "bootstrap"; `paired` is "mcnemar" or "bootstrap". A `mean`
    over a 0/1 column is tested with McNemar's test, because each example is right or wrong.
    """

    compute: Callable[[np.ndarray, Mapping[str, Any]], float]
    interval: str = "bootstrap"
    paired: str = "bootstrap"


def _mean(rows: np.ndarray, params: Mapping[str, Any]) -> float:
    return float(rows[:, 0].mean())


def _macro_f1(rows: np.ndarray, params: Mapping[str, Any]) -> float:
    """Macro-F1 over every class index below `labels`; a class with no support scores 0."""
    labels = int(params["labels"])
    gold = rows[:, 0].astype(int)
    predicted = rows[:, 1].astype(int)
    hits = np.bincount(gold[gold == predicted], minlength=labels)[:labels]
    gold_counts = np.bincount(gold, minlength=labels)[:labels]
    predicted_counts = np.bincount(predicted, minlength=labels)[:labels]
    denominator = gold_counts + predicted_counts
    f1 = np.divide(2.0 * hits, denominator, out=np.zeros(labels), where=denominator > 0)
    return float(f1.mean())


def _f1_from_counts(true_positives, false_positives, false_negatives):
    """F1 per entry of count arrays, 0 where precision or recall has no denominator."""
    predicted = true_positives + false_positives
    gold = true_positives + false_negatives
    precision = np.divide(
        true_positives, predicted, out=np.zeros(len(predicted)), where=predicted > 0
    )
    recall = np.divide(true_positives, gold, out=np.zeros(len(gold)), where=gold > 0)
    total = precision + recall
    return np.divide(2 * precision * recall, total, out=np.zeros(len(total)), where=total > 0)


def _ner_type_scores(rows: np.ndarray, params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    types = int(params["types"])
    counts = rows.reshape(len(rows), types, 3).sum(axis=0)
    f1 = _f1_from_counts(counts[:, 0], counts[:, 1], counts[:, 2])
    present = counts.sum(axis=1) > 0
    return f1, present


def _ner_macro_f1(rows: np.ndarray, params: Mapping[str, Any]) -> float:
    """Mean F1 over the entity types that occur, as harness.metrics.ner.official_scores."""
    f1, present = _ner_type_scores(rows, params)
    return float(f1[present].mean()) if present.any() else 0.0


def _ner_type_f1(rows: np.ndarray, params: Mapping[str, Any]) -> float:
    f1, _ = _ner_type_scores(rows, params)
    return float(f1[int(params["type"])])


def _span_micro_f1(rows: np.ndarray, params: Mapping[str, Any]) -> float:
    counts = rows.sum(axis=0)
    return float(_f1_from_counts(counts[0:1], counts[1:2], counts[2:3])[0])


def _undefined_as_nan(function: Callable[[np.ndarray, np.ndarray], Any]):
    def compute(rows: np.ndarray, params: Mapping[str, Any]) -> float:
        try:
            value = function(rows[:, 0], rows[:, 1])
        except UndefinedMetric:
            return math.nan
        return float(getattr(value, "value", value))

    return compute


STATISTICS: dict[str, Statistic] = {
    "proportion": Statistic(_mean, interval="wilson", paired="mcnemar"),
    "mean": Statistic(_mean),
    "macro_f1": Statistic(_macro_f1),
    "ner_macro_f1": Statistic(_ner_macro_f1),
    "ner_type_f1": Statistic(_ner_type_f1),
    "span_micro_f1": Statistic(_span_micro_f1),
    "spearman": Statistic(_undefined_as_nan(spearman)),
    "pearson": Statistic(_undefined_as_nan(pearson)),
    "average_precision": Statistic(_undefined_as_nan(average_precision)),
    "max_accuracy": Statistic(_undefined_as_nan(best_accuracy)),
    "max_f1": Statistic(_undefined_as_nan(best_f1)),
}


def _is_binary(values: Sequence[Any]) -> bool:
    return all(not isinstance(value, (list, tuple)) and value in (0, 1) for value in values)


def _pack(name: str, values: Sequence[Any]) -> str | list:
    """Pack a 0/1 column into a string; round other numbers to 6 decimal places."""
    if values and _is_binary(values):
        return "".join("1" if value else "0" for value in values)

    def number(value: Any) -> float | int:
        if isinstance(value, (bool, np.bool_)):
            return int(value)
        if isinstance(value, (int, np.integer)):
            return int(value)
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"per-example column {name!r} has a non-finite value {value}")
        return round(value, 6)

    return [
        [number(item) for item in value] if isinstance(value, (list, tuple)) else number(value)
        for value in values
    ]


def per_example_data(
    ids: Sequence[Any],
    columns: Mapping[str, Sequence[Any]],
    metrics: Mapping[str, Mapping[str, Any]],
) -> PerExample:
    """Build the `per_example` object of a CaseResult.

    `metrics` maps each metric to `{"statistic": name, "columns": [...], ...parameters}`;
    `scale` defaults to 1.

    >>> data = per_example_data(
    ...     ["a", "b"], {"correct": [True, False]},
    ...     {"accuracy": {"statistic": "proportion", "columns": ["correct"]}},
    ... )
    >>> data["columns"], metric_value(data, "accuracy")
    ({'correct': '10'}, 0.5)
    """
    for name, values in columns.items():
        if len(values) != len(ids):
            raise ValueError(f"column {name!r} has {len(values)} values for {len(ids)} ids")
    specs = {}
    for metric, spec in metrics.items():
        if spec["statistic"] not in STATISTICS:
            raise ValueError(f"unknown statistic {spec['statistic']!r} for metric {metric!r}")
        missing = [name for name in spec["columns"] if name not in columns]
        if missing:
            raise ValueError(f"metric {metric!r} reads missing columns {missing}")
        specs[metric] = {"scale": 1.0, **spec}
    return {
        "ids": [str(value) for value in ids],
        "columns": {name: _pack(name, values) for name, values in columns.items()},
        "metrics": specs,
    }


def column_array(data: PerExample, name: str) -> np.ndarray:
    """Unpack one column as a float array: (examples,) or (examples, width)."""
    values = data["columns"][name]
    if isinstance(values, str):
        return np.frombuffer(values.encode("ascii"), dtype=np.uint8).astype(float) - ord("0")
    return np.asarray(values, dtype=float)


def metric_rows(data: PerExample, metric: str) -> np.ndarray:
    """Return the 2-D array of rows that `metric`'s statistic reads, one row per example."""
    spec = data["metrics"][metric]
    parts = [column_array(data, name) for name in spec["columns"]]
    return np.column_stack([part.reshape(len(part), -1) for part in parts])


def is_binary_metric(data: PerExample, metric: str) -> bool:
    """Tell whether a metric reads a single packed 0/1 column."""
    spec = data["metrics"][metric]
    return len(spec["columns"]) == 1 and isinstance(data["columns"][spec["columns"][0]], str)


def statistic_of(data: PerExample, metric: str) -> tuple[Statistic, Callable[[np.ndarray], float]]:
    """Return a metric's Statistic and a function from rows to the metric on its scale."""
    spec = data["metrics"][metric]
    statistic = STATISTICS[spec["statistic"]]
    scale = float(spec.get("scale", 1.0))

    def compute(rows: np.ndarray) -> float:
        return scale * statistic.compute(rows, spec)

    return statistic, compute


def metric_value(data: PerExample, metric: str) -> float:
    """Recompute a metric from all rows."""
    _, compute = statistic_of(data, metric)
    return compute(metric_rows(data, metric))
