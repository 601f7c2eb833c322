"""Local stand-ins for APIs that cannot run here (a Kubernetes API server, ...): real servers speaking
the real protocol on 127.0.0.1, driven by the real client libraries, with state the tests can inspect."""
