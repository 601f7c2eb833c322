"""Developer tooling for Chaosplane: local servers, the test runner and `make run`."""
