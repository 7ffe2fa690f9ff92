"""The CJK font for the report's PDF: Noto Sans SC from the ``pylopdf-fonts-zh-cn`` wheel.

A pip-only install (``make run``) must render Chinese without system fonts, so the font comes
from a PyPI wheel (SIL OFL 1.1, licence in the wheel's dist-info). Same behaviour as
``broadcaster.publish.fonts.cjk_font_path``; the two are to be merged.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

PACKAGE = "pylopdf_fonts_zh_cn"
FILENAME = "NotoSansSC-Regular.otf"


@functools.cache
def cjk_font_path() -> Path:
    """Path of Noto Sans SC Regular (OpenType, CFF outlines).

    Raises ``RuntimeError`` naming the missing package when the wheel is not installed.
    """
    try:
        path = Path(str(resources.files(PACKAGE) / FILENAME))
    except ModuleNotFoundError:
        raise RuntimeError("缺少中文字体：请安装 pylopdf-fonts-zh-cn==0.1.1 / "
                           "CJK font package pylopdf-fonts-zh-cn is not installed") from None
    if not path.is_file():
        raise RuntimeError(f"中文字体文件不存在：{path} / CJK font file missing")
    return path
