"""The committed generated code of the wire contract is what the .proto files generate (Flower's
dev/check-protos.sh): regenerate into a temporary folder and compare, file by file."""
from __future__ import annotations

from pathlib import Path

from nodeagent.proto.generate import REPO, generate


def test_the_generated_code_is_up_to_date(tmp_path: Path) -> None:
    generated = {p.relative_to(tmp_path): p.read_text() for p in generate(tmp_path)}
    committed = {
        p.relative_to(REPO): p.read_text()
        for p in (REPO / "nodeagent" / "proto").rglob("*")
        if p.suffix in (".py", ".pyi") and "_pb2" in p.name
    }

    assert generated, "protoc generated nothing"
    assert sorted(generated) == sorted(committed), "generated and committed files differ in name"
    stale = [str(path) for path, text in generated.items() if committed[path] != text]
    assert not stale, f"regenerate with `python -m nodeagent.proto.generate`: stale {stale}"
