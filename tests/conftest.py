"""Shared pytest configuration.

Fixture modules are plugins (as in quix-streams' test suite): the stack
fixture yields real Kafka, Postgres and Redis (external, testcontainers or the
local stack processes, in that order of preference).
"""

import pytest

pytest_plugins = ["tests.fixtures.stack", "tests.fixtures.pipeline", "tests.fixtures.secure"]


#: Lines of each process log shown with a failed test (workers, sinks, gateways).
LOG_TAIL_LINES = 120


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001, ANN201 - pytest hook
    """A failed test shows the tail of every ``*.log`` its processes wrote under
    ``tmp_path``: in CI the temporary directory is gone afterwards, and a worker's
    log (Faust's rebalance, the order gate's seeks, ``wait_empty``) is what tells a
    race from a bug."""
    outcome = yield
    report = outcome.get_result()
    tmp_path = item.funcargs.get("tmp_path") if hasattr(item, "funcargs") else None
    if not report.failed or tmp_path is None:
        return
    for log_file in sorted(tmp_path.rglob("*.log"))[:8]:
        try:
            lines = log_file.read_text(errors="replace").splitlines()
        except OSError:
            continue
        tail = "\n".join(line[:400] for line in lines[-LOG_TAIL_LINES:])
        report.sections.append((f"log tail {log_file.relative_to(tmp_path)}", tail))
