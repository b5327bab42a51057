"""Shared pytest configuration.

Fixture modules are plugins (as in quix-streams' test suite): the stack
fixture yields real Kafka, Postgres and Redis (external, testcontainers or the
local stack processes, in that order of preference).
"""

pytest_plugins = ["tests.fixtures.stack", "tests.fixtures.pipeline", "tests.fixtures.secure"]
