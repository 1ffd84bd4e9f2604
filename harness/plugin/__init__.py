"""pytest plugin: YAML specs become parametrised CLUE cases (registered as `pytest11`).

A test module marks a test with `@pytest.mark.clue_spec("FILE.yaml")` and takes the
`clue_case` and `clue_evaluate` fixtures; see evals/test_clue.py.
"""

from __future__ import annotations

import pytest

from harness.plugin import sharding
from harness.plugin.distribution import ModelGrouping
from harness.plugin.options import add_options
from harness.plugin.session import RESULT_KEY, ClueSession, junit_properties
from harness.results import CaseResult
from harness.spec import CaseConfig

SESSION_KEY = pytest.StashKey[ClueSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "clue_spec(path): YAML spec whose cases parametrise clue_case"
    )
    # pytest-xdist registers this mark too; registering it here keeps runs without xdist
    # free of unknown-mark warnings.
    config.addinivalue_line(
        "markers",
        "xdist_group(name): run items of one group on one xdist worker (--dist loadgroup)",
    )
    session = ClueSession(config)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "clue-session")
    if config.getoption("clue_group_models") and config.pluginmanager.hasplugin("xdist"):
        grouping = ModelGrouping(
            config, session.settings.output_dir, session.model_group, session.pool.limit_workers
        )
        config.pluginmanager.register(grouping, "clue-model-grouping")
    sharding.register(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    sharding.unregister(config)
    grouping = config.pluginmanager.get_plugin("clue-model-grouping")
    if grouping is not None:
        config.pluginmanager.unregister(grouping)
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        config.pluginmanager.unregister(session)


@pytest.fixture
def clue_evaluate(request: pytest.FixtureRequest):
    """Return a function that evaluates a case and records its result for the reports.

    A data, spec or model error fails the test with one message and no traceback; a
    missed threshold is left to `assert_thresholds`, so a test may add checks of its own.
    """
    session = request.config.stash[SESSION_KEY]
    family = request.config.getini("junit_family")

    def evaluate(case: CaseConfig) -> CaseResult:
        result = session.evaluate(case)
        request.node.stash[RESULT_KEY] = result
        if family != "xunit2":
            request.node.user_properties.extend(junit_properties(result))
        if result.error:
            pytest.fail(result.error, pytrace=False)
        return result

    return evaluate


def assert_thresholds(result: CaseResult) -> None:
    """Fail the running test, without a traceback, if a metric missed its threshold."""
    if result.failures:
        pytest.fail(f"{result.case_id}: " + "; ".join(result.failures), pytrace=False)
