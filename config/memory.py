"""Keep long-lived objects out of the garbage collector's way.

A full (generation 2) collection walks every object the process holds; after Django and its apps
are loaded that is a few hundred thousand objects, and one such collection held a request for about
200 ms, once every hundred or so requests: the p99 of starting a run. `gc.freeze()` moves what exists
at start-up into a permanent generation that collections skip (as Instagram does for its Django
servers), so they look only at what requests and tasks create.
"""
import gc


def freeze_startup_objects() -> None:
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - load every view module now, so it is frozen too
    gc.collect()
    gc.freeze()
