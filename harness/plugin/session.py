"""The plugin object: turns spec cases into pytest items, runs them, and gathers results.

Roles follow pytest-xdist: a worker (`config.workerinput` is set) collects and runs cases;
the controller, or the single process without xdist, gathers each case's result from its
test report and writes the reports and submission zips at the end of the session.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

import pytest

from harness.baseline import BaselineUpdate
from harness.cache import PredictionCache
from harness.data.layout import NO_DATA_ROOT, resolve_data_root
from harness.errors import HarnessError
from harness.outputs import inside, write_json
from harness.plugin import sharding
from harness.plugin.gating import (
    baseline_file,
    gate_properties,
    record_baselines,
    repeat_lines,
    table_lines,
)
from harness.plugin.models import ModelPool, xdist_group_name
from harness.plugin.options import Settings, read_settings
from harness.plugin.progress import FileProgress, ProgressWatcher, TerminalProgress
from harness.reports import bundle_submissions, ordered, report_rows, write_reports
from harness.results import CaseResult
from harness.runner import CaseRunner
from harness.spec import CaseConfig, Spec, load_spec
from harness.submission import validate_outputs
from harness.tasks import get_task

logger = logging.getLogger(__name__)

RESULT_KEY = pytest.StashKey[CaseResult]()
REPORT_ATTRIBUTE = "clue_result"


def error_result(case: CaseConfig, message: str) -> CaseResult:
    task = get_task(case.task)
    return CaseResult(
        case_id=case.id,
        task=case.task,
        benchmark=task.benchmark,
        split=case.split,
        model=case.model,
        method=case.method,
        tier=case.tier,
        shots=case.shots,
        seed=case.seed,
        main_metric=task.main_metric,
        thresholds=dict(case.thresholds),
        error=message,
        spec_path=case.spec_path,
        spec_index=case.spec_index,
    )


def junit_properties(result: CaseResult) -> list[tuple[str, str]]:
    """Return the per-case JUnit properties: metrics, thresholds, counts and provenance."""
    properties = [(f"clue.metric.{name}", f"{value:.6f}") for name, value in result.metrics.items()]
    properties += [
        (f"clue.threshold.{name}", f"{value:.6f}") for name, value in result.thresholds.items()
    ]
    properties += [
        (
            f"clue.check.{item['name']}",
            f"{item['value']:.6f} {item['bound']}: {'pass' if item['passed'] else 'fail'}",
        )
        for item in result.checks
    ]
    properties += [
        ("clue.status", "error" if result.error else ("pass" if result.passed else "fail")),
        ("clue.examples_scored", str(result.n_scored)),
        ("clue.rows_skipped", str(result.n_skipped)),
        ("clue.examples_cached", str(result.n_cached)),
        ("clue.model", result.model),
        ("clue.data_sha256", result.data_sha256),
        ("clue.eval_seconds", f"{result.eval_seconds:.3f}"),
    ]
    properties += gate_properties(result)
    return properties


class ClueSession:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings: Settings = read_settings(config)
        self.is_worker = hasattr(config, "workerinput")
        self.specs: dict[Path, Spec] = {}
        self.results: dict[str, CaseResult] = {}
        self.pool = ModelPool(
            self.settings.cache_root, self.settings.threads, self.settings.worker_count
        )
        self.remaining_by_model: Counter[tuple[str, str]] = Counter()
        self.watcher: ProgressWatcher | None = None
        self.submission_problems: list[dict] = []
        self.baseline_updates: list[BaselineUpdate] = []
        self.cache = self._prediction_cache()

    def _prediction_cache(self) -> PredictionCache | None:
        """Open the prediction cache, or return None under --clue-no-cache.

        --clue-clear-cache empties it in the controller. That happens in pytest_configure,
        before xdist starts the workers.
        """
        folder = self.settings.prediction_cache
        if folder is None:
            return None
        if self.settings.clear_prediction_cache and not self.is_worker:
            PredictionCache(folder, self.settings.cache_root).clear()
        if not self.settings.use_prediction_cache:
            return None
        return PredictionCache(folder, self.settings.cache_root)

    # Collection -----------------------------------------------------------------------

    def spec(self, path: Path) -> Spec:
        path = path.resolve()
        if path not in self.specs:
            self.specs[path] = load_spec(path)
        return self.specs[path]

    @pytest.hookimpl
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "clue_case" not in metafunc.fixturenames:
            return
        marker = metafunc.definition.get_closest_marker("clue_spec")
        if marker is None or not marker.args:
            raise pytest.Collector.CollectError(
                f"{metafunc.definition.nodeid} uses clue_case but has no "
                '@pytest.mark.clue_spec("FILE.yaml") mark naming its spec'
            )
        path = Path(metafunc.module.__file__).parent / marker.args[0]
        try:
            spec = self.spec(path)
        except HarnessError as error:
            raise pytest.Collector.CollectError(str(error)) from None
        if resolve_data_root(self.settings.data_option, spec.data_root) is None:
            raise pytest.Collector.CollectError(NO_DATA_ROOT)

        params = [
            pytest.param(
                case,
                id=case.id,
                marks=[
                    *(getattr(pytest.mark, name) for name in case.marks),
                    # Used only under `--dist loadgroup`: one worker runs a model's cases.
                    # NOTE: pytest-xdist 3.8.0 ignores the mark under pytest 9, because it
                    # rewrites item._nodeid, which pytest 9 no longer reads.
                    pytest.mark.xdist_group(xdist_group_name(spec.models[case.model])),
                ],
            )
            for case in spec.cases
        ]
        metafunc.parametrize("clue_case", params)

    @pytest.hookimpl
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        kept, deselected = [], []
        for item in items:
            case = _case_of(item)
            if case is not None and case.tier == "full" and not self.settings.full_tier:
                deselected.append(item)
            else:
                kept.append(item)
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = kept

        # Keep each model's cases together so that a single process can free a model
        # after its last case; the order is the same on every xdist worker.
        positions = [index for index, item in enumerate(items) if _case_of(item) is not None]
        clue_items = [items[index] for index in positions]
        first_seen: dict[tuple[str, str], int] = {}
        for order, item in enumerate(clue_items):
            first_seen.setdefault(_model_key(_case_of(item)), order)
        clue_items.sort(key=lambda item: first_seen[_model_key(_case_of(item))])
        for index, item in zip(positions, clue_items):
            items[index] = item
        self.remaining_by_model = Counter(_model_key(_case_of(item)) for item in clue_items)

    def model_group(self, item: pytest.Item) -> str | None:
        """Return the xdist group of a CLUE case's model, or None for other tests."""
        case = _case_of(item)
        if case is None:
            return None
        return xdist_group_name(self.spec(Path(case.spec_path)).models[case.model])

    # Running --------------------------------------------------------------------------

    def progress_factory(self, case_id: str, total: int):
        interval = self.settings.progress_interval
        if self.is_worker:
            folder = self.settings.output_dir / ".progress"
            return FileProgress(folder, self.settings.worker_id, case_id, total, interval)
        return TerminalProgress(self.config, case_id, total, interval)

    def evaluate(self, case: CaseConfig) -> CaseResult:
        spec = self.spec(Path(case.spec_path))
        runner = CaseRunner(
            resolve_data_root(self.settings.data_option, spec.data_root),
            self.settings.output_dir,
            full_tier=self.settings.full_tier,
            progress=self.progress_factory,
            cache=self.cache,
            baseline_file=baseline_file(self.settings, spec),
            recording=self.settings.update_baseline,
            repeats=self.settings.repeat,
        )
        model = spec.models[case.model]
        try:
            # With the prediction cache, the model loads only if a case sends a request
            # whose result the cache lacks.
            result = runner.run_model(case, model, lambda: self.pool.get(model))
        except HarnessError as error:
            result = error_result(case, str(error))
        finally:
            self._release_if_done(case)
        write_json(inside(self.settings.output_dir, "cases", f"{case.id}.json"), result.to_dict())
        return result

    def _release_if_done(self, case: CaseConfig) -> None:
        key = _model_key(case)
        self.remaining_by_model[key] -= 1
        # Under xdist a worker cannot tell which cases it will still receive, so it keeps
        # its models until the session ends.
        if not self.is_worker and self.remaining_by_model[key] <= 0:
            still_used = any(
                count > 0
                for (_, model), count in self.remaining_by_model.items()
                if model == case.model
            )
            if not still_used:
                self.pool.release(case.model)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        report = outcome.get_result()
        result = item.stash.get(RESULT_KEY, None)
        if result is not None and report.when == "call":
            setattr(report, REPORT_ATTRIBUTE, result.to_dict())

    # Gathering (controller or single process) -------------------------------------------

    @pytest.hookimpl
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.is_worker or not _uses_xdist(self.config):
            return
        self.watcher = ProgressWatcher(
            self.config, self.settings.output_dir / ".progress", self.settings.progress_interval
        )
        self.watcher.start()

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        data = getattr(report, REPORT_ATTRIBUTE, None)
        if data is None:
            return
        result = CaseResult.from_dict(data)
        self.results[result.case_id] = result
        xml = self._junit_xml()
        if xml is not None and self.config.getini("junit_family") == "xunit2":
            # xunit2 allows properties only at suite level, so name them after the case.
            for name, value in junit_properties(result):
                xml.add_global_property(f"{result.case_id}.{name}", value)

    def _junit_xml(self):
        from _pytest.junitxml import xml_key

        return self.config.stash.get(xml_key, None)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.pool.close()
        # A shard without cases still writes its (empty) report, for clue-harness merge.
        if self.is_worker or not (self.results or sharding.in_sharded_run(self.config)):
            return
        results = list(self.results.values())
        self._remove_stale_files(results)
        archives = bundle_submissions(self.settings.output_dir)
        self.submission_problems = validate_outputs(archives, results)
        self.report_paths = write_reports(
            results,
            self.settings.output_dir,
            archives,
            self.submission_problems,
            run=sharding.run_info(self.config),
        )
        if self.settings.update_baseline:
            self.baseline_updates = record_baselines(ordered(results), self.settings)
        shutil.rmtree(self.settings.output_dir / ".progress", ignore_errors=True)

    def _remove_stale_files(self, results: list[CaseResult]) -> None:
        """Delete predictions and submissions that earlier runs left in the output folder."""
        keep = {
            Path(path).resolve()
            for result in results
            for path in (result.predictions_file, result.submission_file)
            if path
        }
        keep |= {
            Path(path).resolve()
            for result in results
            if result.repeats
            for path in result.repeats["predictions_files"]
            if path
        }
        keep |= {
            inside(self.settings.output_dir, "cases", f"{result.case_id}.json")
            for result in results
        }
        for folder in ("predictions", "submission", "cases"):
            root = self.settings.output_dir / folder
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*"), reverse=True):
                if path.is_file() and path.resolve() not in keep:
                    path.unlink()
                elif path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
        for stale in self.settings.output_dir.glob("*submit*.zip"):
            stale.unlink()

    @pytest.hookimpl
    def pytest_terminal_summary(
        self, terminalreporter, exitstatus: int, config: pytest.Config
    ) -> None:
        if self.is_worker or not self.results:
            return
        rows = report_rows(ordered(list(self.results.values())))
        terminalreporter.section("CLUE results")
        for line in table_lines(rows):
            terminalreporter.write_line(line)
        for line in repeat_lines(ordered(list(self.results.values()))):
            terminalreporter.write_line(line)
        for update in self.baseline_updates:
            state = "written" if update.written else "NOT written"
            terminalreporter.write_line(f"baseline {update.path}: {state}")
            for line in update.changes:
                terminalreporter.write_line(f"  {line}")
        for problem in self.submission_problems:
            location = problem["file"] + (f":{problem['line']}" if problem["line"] else "")
            terminalreporter.write_line(
                f"submission {problem['severity']}: {problem['source']}: {location}: "
                f"{problem['message']}"
            )
        json_path, markdown_path = self.report_paths
        html_path = markdown_path.with_name("report.html")
        terminalreporter.write_line(f"reports: {markdown_path}, {html_path} and {json_path}")


def _case_of(item: pytest.Item) -> CaseConfig | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    case = callspec.params.get("clue_case")
    return case if isinstance(case, CaseConfig) else None


def _model_key(case: CaseConfig) -> tuple[str, str]:
    return case.spec_path, case.model


def _uses_xdist(config: pytest.Config) -> bool:
    numprocesses = getattr(config.option, "numprocesses", None)
    return bool(numprocesses) and getattr(config.option, "dist", "no") != "no"
