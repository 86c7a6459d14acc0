"""How the shipped wide-character fonts were made (run once by a maintainer; the results are committed).

    apt-get download fonts-noto-cjk fonts-symbola && for f in *.deb; do dpkg -x $f x; done
    python -m ocr_model.page.make_fonts --noto x/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc \
        --symbola x/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf

Needs fontTools (`pip install fonttools`); nothing here runs at import or install time, and nothing is
downloaded: the inputs are the Debian packages' font files.

Outputs, in ocr_model/page/fonts/:
- NotoSansMonoCJKsc-Regular.subset.otf: face 7 of Noto Sans CJK (Noto Sans Mono CJK SC, OFL-1.1), cut to the
  Han characters of GB 2312, Big5 level 1 and JIS X 0208 (10,269: simplified and traditional Chinese and
  Japanese kanji), the 2,350 Hangul syllables of KS X 1001, hiragana, katakana, CJK symbols and punctuation,
  and the full-width forms. Every character kept gets a glyph class (ocr_model.page.glyphs).
- Symbola.emoji.subset.ttf: the wide (East Asian Width W) pictographs U+1F300..U+1FAFF of Symbola (George
  Douros: "free for any use; may be opened, edited, modified, regenerated, packaged and redistributed"),
  drawn in one grey, two cells each.
"""
from __future__ import annotations

import argparse
import unicodedata
from pathlib import Path

FONT_DIR = Path(__file__).parent / "fonts"
CJK_FILE = "NotoSansMonoCJKsc-Regular.subset.otf"
EMOJI_FILE = "Symbola.emoji.subset.ttf"


def _double_byte(codec: str, lead: range, trail) -> set[str]:
    out = set()
    for a in lead:
        for b in trail:
            try:
                ch = bytes([a, b]).decode(codec)
            except UnicodeDecodeError:
                continue
            if len(ch) == 1:
                out.add(ch)
    return out


def cjk_characters() -> set[int]:
    """Code points kept in the CJK subset (before intersecting with what the font covers)."""
    han = (_double_byte("gb2312", range(0xB0, 0xF8), range(0xA1, 0xFF))
           | _double_byte("big5", range(0xA4, 0xC7), list(range(0x40, 0x7F)) + list(range(0xA1, 0xFF)))
           | _double_byte("euc_jp", range(0xB0, 0xF5), range(0xA1, 0xFF)))
    han = {c for c in han if unicodedata.name(c, "").startswith("CJK UNIFIED")}
    hangul = {c for c in _double_byte("euc_kr", range(0xB0, 0xC9), range(0xA1, 0xFF))
              if unicodedata.name(c, "").startswith("HANGUL SYLLABLE")}
    cps = {ord(c) for c in han | hangul}
    cps |= set(range(0x3000, 0x3040)) | set(range(0x3040, 0x30A0)) | set(range(0x30A0, 0x3100))
    cps |= set(range(0xFF01, 0xFF5F)) | set(range(0xFFE0, 0xFFE7))
    return {c for c in cps if unicodedata.category(chr(c)) not in ("Cn", "Cc", "Cf", "Zs")}


def emoji_characters(covered: set[int]) -> set[int]:
    return {c for c in covered if 0x1F300 <= c < 0x1FB00 and unicodedata.east_asian_width(chr(c)) == "W"}


def _subset(font, keep: set[int], out: Path) -> int:
    from fontTools import subset

    opts = subset.Options()
    opts.layout_features = []          # the renderer uses no shaping (Pillow's BASIC layout)
    opts.name_IDs = ["*"]              # keep the names, licence and copyright records
    opts.notdef_outline = True
    opts.hinting = True
    sub = subset.Subsetter(opts)
    sub.populate(unicodes=sorted(keep))
    sub.subset(font)
    font.save(str(out))
    return len(keep)


def main(argv=None) -> None:
    from fontTools.ttLib import TTCollection, TTFont

    ap = argparse.ArgumentParser(prog="python -m ocr_model.page.make_fonts", description=__doc__.split("\n\n")[0])
    ap.add_argument("--noto", required=True, help="NotoSansCJK-Regular.ttc from Debian fonts-noto-cjk")
    ap.add_argument("--noto-index", type=int, default=7, help="face of the collection: 7 = Noto Sans Mono CJK SC")
    ap.add_argument("--symbola", required=True, help="Symbola_hint.ttf from Debian fonts-symbola")
    ap.add_argument("--out", default=str(FONT_DIR), help="where the subsets go")
    args = ap.parse_args(argv)
    noto = TTCollection(args.noto).fonts[args.noto_index]
    keep = cjk_characters() & set(noto.getBestCmap())
    n = _subset(noto, keep, Path(args.out) / CJK_FILE)
    print(f"{CJK_FILE}: {n} characters")
    sym = TTFont(args.symbola)
    keep = emoji_characters(set(sym.getBestCmap()))
    n = _subset(sym, keep, Path(args.out) / EMOJI_FILE)
    print(f"{EMOJI_FILE}: {n} characters")


if __name__ == "__main__":
    main()
