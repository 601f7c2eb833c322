"""Regenerate the Python code of the wire contract (python -m nodeagent.proto.generate [OUT_DIR]).

The generated modules and their type stubs are committed; tests/nodeagent/test_proto.py regenerates
them into a temporary folder and fails on any difference."""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTOS = sorted((REPO / "nodeagent" / "proto").rglob("*.proto"))


def generate(out: Path) -> list[Path]:
    """Write *_pb2.py, *_pb2_grpc.py and their .pyi next to where the protos live, under `out`."""
    from grpc_tools import protoc

    bindir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"-I{REPO}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *[str(p.relative_to(REPO)) for p in PROTOS],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(p for p in out.rglob("*") if p.suffix in (".py", ".pyi") and "_pb2" in p.name)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            target = REPO / path.relative_to(tmp)
            shutil.copyfile(path, target)
            print(f"wrote {target.relative_to(REPO)}")


if __name__ == "__main__":
    main()
