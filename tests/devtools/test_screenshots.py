"""`make screenshots` for real, in a subprocess as `make` runs it: a throwaway SQLite database (the
database `make run` uses, so every portal list page is exercised on SQLite as well as on the
PostgreSQL the rest of the suite uses), its own Redis, the demo tenant with history made through
the real services, and Debian's Chromium. The tool stops on any page that does not answer 200;
here each image must also hold a drawn page, not a blank one."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from devtools import screenshots

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not os.path.exists(screenshots.CHROMIUM),
                                reason="needs Chromium (make test installs it)")


def png_pixels(path: Path) -> tuple[int, int, bytes]:
    """(width, height, the decompressed scanlines) of a PNG, read with the standard library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    pos, width, height, idat = 8, 0, 0, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_png_pixels_tells_a_blank_image_from_a_drawn_one(tmp_path: Path) -> None:
    """The check below can fail: a blank white image has almost no distinct byte values."""
    def png(rows: list[bytes], width: int) -> bytes:
        def chunk(kind: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        raw = b"".join(b"\x00" + row for row in rows)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, len(rows), 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

    (tmp_path / "blank.png").write_bytes(png([b"\xff" * 30] * 10, 10))
    (tmp_path / "drawn.png").write_bytes(png([bytes(range(i, i + 30)) for i in range(10)], 10))
    assert len(set(png_pixels(tmp_path / "blank.png")[2])) <= 2
    assert len(set(png_pixels(tmp_path / "drawn.png")[2])) > 30


def test_make_screenshots_renders_every_main_page_of_the_demo_tenant(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    done = subprocess.run([sys.executable, "-m", "devtools.screenshots", "--out", str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"wrote {len(screenshots.PAGES)} screenshots" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(name for name, _, _ in screenshots.PAGES)
    for name, _, page_width in screenshots.PAGES:
        width, height, pixels = png_pixels(tmp_path / name)
        assert width == page_width, f"{name} is {width} px wide, not {page_width}: something overflows the page"
        assert height >= 600, f"{name} is only {height} px tall"
        assert len(set(pixels)) > 64, f"{name} looks blank"
