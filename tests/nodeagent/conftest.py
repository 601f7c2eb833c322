from tests.nodeagent.netns import lab  # noqa: F401 - the fixture, for every test module here
