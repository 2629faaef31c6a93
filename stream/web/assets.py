"""The wallboard's static files: the page's own (stream/web/static) and the webfont it ships.

The font is Inter (SIL Open Font License 1.1), taken unmodified from the `fontpkg-inter`
package, so the page looks and fits the same on every screen whatever fonts it has
(see docs/decisions/wallboard-font.md).
"""

from __future__ import annotations

from importlib import resources
from typing import Final

FONT_FILE: Final = "inter.ttf"
STATIC_FILES: Final = {
    "wallboard.js": "application/javascript",
    "wallboard.css": "text/css",
    "favicon.svg": "image/svg+xml",
    FONT_FILE: "font/ttf",
}
_FONT_SOURCE: Final = ("fontpkg_inter", "files", "Inter[opsz,wght].ttf")


def read_static(name: str) -> bytes:
    """Bytes of `wallboard.html` or of a file served under /static/ (a key of STATIC_FILES)."""
    if name == FONT_FILE:
        package, *path = _FONT_SOURCE
        return resources.files(package).joinpath(*path).read_bytes()
    return resources.files("stream.web").joinpath("static", name).read_bytes()
