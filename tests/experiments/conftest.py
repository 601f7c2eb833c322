"""Fixtures of the run tests: the lab (network namespaces that fail a test leaving anything behind), and the
real platform of the end-to-end tests (platform_harness)."""
from tests.experiments.platform_harness import certs, platform  # noqa: F401 - the fixtures
from tests.nodeagent.netns import lab  # noqa: F401 - the fixture
