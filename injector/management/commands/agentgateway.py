"""python manage.py agentgateway --listen HOST:PORT --cert FILE --key FILE [--client-ca FILE] [--name NAME]

Serves AgentGateway.Connect until SIGTERM or Ctrl-C. TLS is required; `--insecure-dev` allows plain
text for local development. With `--client-ca`, agents must also present a certificate (mutual TLS).
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from injector.gateway import AgentGateway, TlsFiles


class Command(BaseCommand):
    help = "Run the agent gateway: node agents connect here, commands reach them through Redis."

    def add_arguments(self, parser: Any) -> None:
        default_listen = getattr(settings, "AGENT_GATEWAY_LISTEN", "0.0.0.0:7443")  # noqa: S104 - agents dial in
        parser.add_argument("--listen", default=default_listen, help=f"HOST:PORT (default {default_listen})")
        parser.add_argument("--cert", type=Path, help="server certificate chain (PEM)")
        parser.add_argument("--key", type=Path, help="server private key (PEM)")
        parser.add_argument("--client-ca", type=Path, help="CA bundle that agent client certificates must chain to")
        parser.add_argument("--insecure-dev", action="store_true", help="plain text, no TLS: local development only")
        parser.add_argument("--name", default=None, help="this gateway's name in agent rows (default host-port)")
        parser.add_argument("--max-streams", type=int, default=None, help="most agents held at once (default 1024)")

    def handle(self, *args: Any, **options: Any) -> None:
        gateway = AgentGateway(
            options["listen"],
            tls=_tls(options),
            name=options["name"],
            max_streams=options["max_streams"],
        )
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        try:
            port = gateway.start()
        except OSError as error:
            raise CommandError(str(error)) from None
        mode = "PLAINTEXT (development only)" if gateway.tls is None else "TLS"
        if gateway.tls is not None and gateway.tls.client_ca:
            mode = "mutual TLS"
        self.stdout.write(f"agent gateway {gateway.name} listening on port {port} ({mode})", ending="\n")
        self.stdout.flush()
        stopping.wait()
        self.stdout.write("agent gateway stopping")
        gateway.stop()


def _tls(options: dict[str, Any]) -> TlsFiles | None:
    cert, key, client_ca = options["cert"], options["key"], options["client_ca"]
    if options["insecure_dev"]:
        if cert or key or client_ca:
            raise CommandError("--insecure-dev serves plain text: drop --cert, --key and --client-ca, or drop it")
        return None
    if not cert or not key:
        raise CommandError("TLS is required: give --cert and --key (or --insecure-dev for local development)")
    for path in (cert, key, client_ca):
        if path is not None and not path.is_file():
            raise CommandError(f"no such file: {path}")
    return TlsFiles(cert, key, client_ca)
