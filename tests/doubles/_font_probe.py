"""Probe: does the pip-installed CJK font render Chinese in Pillow (PNG) and matplotlib (PDF)?

Not a test (needs Pillow, matplotlib and ``pylopdf-fonts-zh-cn``, none of which the service
depends on yet); run by hand and look at the output::

    python -m tests.doubles._font_probe /tmp/font-probe

It writes ``poster.png`` (Pillow) and ``report-type3.pdf`` / ``report-type42.pdf`` (matplotlib)
and prints ``pdffonts`` for the PDFs when poppler-utils is installed. The font is located the
way the service should locate it: through the package, never a system path.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

TEXT = "一氧化碳中毒气象条件 4级 容易发生"
LEVEL4 = "#EF6C00"  # DESIGN.md A12 level colour


def cjk_font_path() -> Path:
    """Noto Sans SC Regular (OTF, CFF outlines) shipped by ``pylopdf-fonts-zh-cn``."""
    path = resources.files("pylopdf_fonts_zh_cn").joinpath("NotoSansSC-Regular.otf")
    return Path(str(path))


def render_png(font: Path, out: Path) -> None:
    """A 720 px wide strip in the level colour, as the poster would start."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (720, 120), "white")
    ImageDraw.Draw(img).text((16, 30), TEXT, font=ImageFont.truetype(str(font), 44), fill=LEVEL4)
    img.save(out)


def render_pdf(font: Path, out: Path, fonttype: int) -> None:
    """A chart with a Chinese title and tick labels; ``fonttype`` 3 (default) or 42."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(font))
    name = font_manager.FontProperties(fname=str(font)).get_name()
    with plt.rc_context({"font.family": name, "pdf.fonttype": fonttype}):
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.set_title(TEXT)
        ax.bar(["周一", "周二", "周三"], [2, 4, 3], color=LEVEL4)
        fig.savefig(out)
        plt.close(fig)


def main(argv: list[str]) -> None:
    out = Path(argv[0] if argv else "font-probe")
    out.mkdir(parents=True, exist_ok=True)
    font = cjk_font_path()
    print(f"font: {font} ({font.stat().st_size} bytes)")
    render_png(font, out / "poster.png")
    for fonttype in (3, 42):
        pdf = out / f"report-type{fonttype}.pdf"
        render_pdf(font, pdf, fonttype)
        if shutil.which("pdffonts"):
            print(subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True).stdout)
        else:
            print(f"{pdf}: pdffonts not installed (apt-get install poppler-utils)")
    print(f"look at {out}/poster.png and the PDFs")


if __name__ == "__main__":
    main(sys.argv[1:])
