"""Where the CJK font lives: one function for the poster (``publish``) and the PDF report (``report``).

The font comes from the PyPI wheel ``pylopdf-fonts-zh-cn`` (Noto Sans SC 2.004, SIL OFL 1.1), so
``make run`` stays pip-only: no Debian font package and no font file copied into this repository.

It is a top-level module in the lowest layer, beside ``timeutil`` and ``net``, because its two
users are sibling layers that may not import each other (pyproject ``[tool.importlinter]``);
switching fonts stays one edit.
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from pathlib import Path

FONT_PACKAGE = "pylopdf_fonts_zh_cn"
FONT_FILE = "NotoSansSC-Regular.otf"


@cache
def cjk_font_path() -> Path:
    """Return the path of the Simplified Chinese font (OpenType/CFF, Noto Sans SC Regular).

    Raises ``FileNotFoundError`` naming the wheel when it is not installed, because the poster
    cannot say anything without it.
    """
    try:
        root = importlib.resources.files(FONT_PACKAGE)
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            f"the Chinese font package is missing: pip install pylopdf-fonts-zh-cn ({exc})"
        ) from exc
    path = Path(str(root / FONT_FILE))
    if not path.is_file():
        raise FileNotFoundError(f"{FONT_FILE} not found in {FONT_PACKAGE} at {path}")
    return path
