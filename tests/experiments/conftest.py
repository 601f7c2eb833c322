"""Fixtures of the run tests: the lab (network namespaces that fail a test leaving anything behind)."""
from tests.nodeagent.netns import lab  # noqa: F401 - the fixture
