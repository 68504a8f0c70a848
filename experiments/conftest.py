"""Fixtures shared by the experiments: where results go, and progress on the terminal."""

from __future__ import annotations

import pytest

from testbed.results import RESULTS, ResultsDir
from testbed.run import new_run_id

_session_id = new_run_id()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("testbed").addoption(
        "--results", default=str(RESULTS), help="folder for results/<session-id>/ (default: results/)")


@pytest.fixture(scope="session")
def results_dir(request) -> ResultsDir:
    """results/<session id>/: one folder per pytest run of the experiments."""
    d = ResultsDir(_session_id, request.config.getoption("--results"))
    return d


@pytest.fixture
def progress(request):
    from testbed.pytest_plugin import progress_for
    return progress_for(request.config)
