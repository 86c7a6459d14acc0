"""Multilingual (non-English) part of the reader's text corpus, from text that installed packages ship.

    python -m ocr_model.corpus_scripts --out corpus/

Contract
--------
Writes into ``out`` (beside the English kinds of ``ocr_model.data.build_corpus``, which it never touches):

    <kind>.<split>.txt.xz   kind in KINDS, split in {train, heldout}; UTF-8, lzma preset 9|EXTREME,
                            documents joined by RS (U+001E)
    sizes.json              merged in place: {kind: {split: characters}} (existing English entries kept)
    sources.json            merged in place: per kind, languages (characters taken) and every source
                            (package, path patterns, licence from /usr/share/doc/<package>/copyright,
                            characters taken)

Kinds (what scripts the reader must learn):
    latin     accented European languages (de fr es it pt pl cs sk hu ro tr nl sv da fi nb hr sl lt lv et is
              ca ga) and Vietnamese; balanced: every language gets its own budget (none above ~6 %)
    greek     Modern Greek
    cyrillic  ru uk bg sr mk (no Belarusian source is installed; wordfreq 'be' falls back to Russian)
    zh        Simplified (zh_CN) and Traditional (zh_TW) Chinese, half each
    ja        Japanese (kana + kanji)
    ko        Korean (Hangul)

Sources, in order of preference (real text first; synthetic only fills what a language lacks):
    man       Debian ``manpages-<lang>`` (manpages-l10n: GPL-3+; manpages-ja, manpages-zh, manpages-pt,
              manpages-tr: their own copyright files) and translated pages other packages ship
              (man-db, passwd, psmisc, xz-utils... for Korean), rendered with
              ``groff -t -mandoc -Tutf8 -P-c -P-b -P-u`` (no SGR, no overstrike), headers/footers dropped
    debref    Debian Reference translations (``debian-reference-<lang>``, GPL-2+), HTML chapters, tags stripped
    fortune   ``fortunes-<lang>`` cookie files (various free licences, see sources.json)
    faker     PyPI ``faker`` (MIT) locale providers: names, addresses, companies, jobs, phone numbers,
              dates and lorem sentences, seeded (``random.Random``/``Faker.seed`` from the source name)
    wordfreq  PyPI ``wordfreq`` word lists (data CC BY-SA 4.0, code Apache-2.0): frequency-weighted synthetic
              sentences, seeded; only where real text is short (Greek, Korean, small Latin languages)

Forbidden (reserved for evaluation): gettext catalogs - any ``.mo``/``.po`` file, ``/usr/share/locale``,
``*/LC_MESSAGES/*`` - and anything under ``/work/shared/data/``. ``_check_path`` asserts this on every path
read.

Cleaning (``clean_text``): roff rendered by groff (or ``strip_roff`` as a fallback), HTML by ``strip_html``,
ANSI escapes and backspace overstrikes removed, NFC, control characters other than '\\n' and '\\t' removed,
lines that are mostly markup (table rules, lone punctuation) dropped, paragraphs (blank lines) and line breaks
kept, runs of blank lines squeezed to one.

Split: one unique source name per document (e.g. ``man:/usr/share/man/de/man1/ls.1.gz#0``,
``faker:ko_KR:17``); ``ocr_model.data._is_heldout(name)`` (sha1, 1 in 20) decides train/heldout.
Documents are at most DOC_MAX (20,000) characters; long texts are cut at paragraph/line boundaries into
parts #0, #1, ... of at most CUT (8,000) characters.

Deterministic: files are visited in sorted order then shuffled with a fixed seed; generators are seeded.
"""
from __future__ import annotations

import argparse
import glob
import gzip
import html
import html.parser
import json
import lzma
import os
import random
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Callable, Iterator

RS = "\x1e"
DOC_MAX = 20_000  # hard limit per document
CUT = 8_000  # long sources are cut into parts of at most this (finer train/heldout granularity)
KINDS = ("latin", "greek", "cyrillic", "zh", "ja", "ko")
SEED = 20240601

# ----------------------------------------------------------------------------------------------------------
# cleaning (pure functions; no Debian package needed)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_OVERSTRIKE = re.compile(r"(.)\x08(?=.)")  # 'a\bb' -> 'b' (bold 'a\ba', underline '_\ba')
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\ufeff\ufffe\uffff\ufffd]")
_MARKUP_CHARS = set("|+-=_*#~<>[]{}()/\\:;.,'\"`^")


def strip_ansi(text: str) -> str:
    """Remove ANSI/SGR escape sequences (coloured fortunes) and backspace overstrikes (like `col -b`)."""
    text = _ANSI.sub("", text)
    while "\x08" in text:
        new = _OVERSTRIKE.sub("", text).replace("\x08", "")
        if new == text:
            break
        text = new
    return text


def remove_controls(text: str) -> str:
    """Drop control/format characters except '\\n' and '\\t'; CRLF/CR become '\\n'."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n").replace("\v", "\n")
    return _CTRL.sub("", text)


def is_markup_line(line: str) -> bool:
    """True for lines that carry no text: table rules, runs of punctuation, leftover tags."""
    s = line.strip()
    if not s:
        return False
    if re.fullmatch(r"</?[A-Za-z][^>]*>", s) or s.startswith(("<!--", "<?")):
        return True
    letters = sum(1 for c in s if c.isalpha() or c.isdigit())
    marks = sum(1 for c in s if c in _MARKUP_CHARS)
    return letters == 0 or (marks > 2 * letters and len(s) > 3)


def tidy(text: str) -> str:
    """NFC, controls out, markup lines out, trailing spaces trimmed, blank-line runs squeezed."""
    text = unicodedata.normalize("NFC", remove_controls(strip_ansi(text)))
    out: list[str] = []
    for line in text.split("\n"):
        line = line.rstrip()
        if is_markup_line(line):
            continue
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


_ROFF_ESC = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),   # font changes
    (re.compile(r"\\s[+-]?\d+"), ""),              # size changes
    (re.compile(r"\\\*(\[[^\]]*\]|\(..|.)"), ""),  # strings
    (re.compile(r"\\\((em|en)"), "\u2014"),
    (re.compile(r"\\\(bu"), "\u2022"),
    (re.compile(r"\\\((lq|rq|dq)"), '"'),
    (re.compile(r"\\\((oq|cq|aq)"), "'"),
    (re.compile(r"\\\(..|\\\[[^\]]*\]"), ""),
    (re.compile(r"\\[&|^%:)]"), ""),
    (re.compile(r"\\[-e]"), lambda m: "-" if m.group(0) == "\\-" else "\\"),
    (re.compile(r"\\ "), " "),
    (re.compile(r"\\c\s*$", re.M), ""),
]


def strip_roff(src: str) -> str:
    """A simple roff/man macro stripper (fallback where groff is missing, and for tests).

    Comment lines and requests are dropped except the text argument of .SH/.SS/.B/.I/.BR/.IR/.TP lines;
    escapes are resolved or removed. Paragraph macros (.PP/.P/.LP/.sp/.TP) become blank lines."""
    out: list[str] = []
    for line in src.split("\n"):
        if line.startswith(('.\\"', "'\\\"", '\\"')) or line.strip() in (".", "'"):
            continue
        if line.startswith((".", "'")):
            m = re.match(r"[.'](\S+)\s*(.*)", line)
            if not m:
                continue
            req, arg = m.group(1), m.group(2)
            if req in ("PP", "P", "LP", "sp", "br", "TP", "IP", "HP", "Sh", "Pp"):
                out.append("")
                if req == "IP" and arg:
                    out.append(arg.split('"')[1] if arg.startswith('"') and arg.count('"') >= 2 else arg.split()[0])
                continue
            if req in ("SH", "SS"):
                out.extend(["", arg.strip('"')])
                continue
            if req in ("B", "I", "SM", "SB", "BR", "IR", "RB", "RI", "BI", "IB", "Nm", "Nd", "Ar", "Fl"):
                parts = re.findall(r'"([^"]*)"|(\S+)', arg)
                words = [a or b for a, b in parts]
                out.append(("" if req.endswith(("R", "I", "B")) and len(req) == 2 else " ").join(words).strip())
                continue
            continue  # any other request (.TH, .nf, .fi, .de ...) carries no text
        out.append(line)
    text = "\n".join(out)
    for pat, rep in _ROFF_ESC:
        text = pat.sub(rep, text)
    return text.replace("\\\\", "\\")


class _HTMLText(html.parser.HTMLParser):
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "ul", "ol",
             "dl", "dt", "dd", "blockquote", "title", "hr", "section", "article", "header", "footer", "caption"}
    SKIP = {"script", "style", "head", "noscript"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.pre = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        elif tag == "pre":
            self.pre += 1
            self.parts.append("\n\n")
        elif tag in ("td", "th"):
            self.parts.append("\t")
        elif tag in self.BLOCK:
            self.parts.append("\n" if tag in ("br", "li", "tr", "dt", "dd") else "\n\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
            self.parts.append("\n\n")
        elif tag in self.BLOCK:
            self.parts.append("\n\n" if tag in ("p", "div", "h1", "h2", "h3", "h4", "table", "ul", "ol") else "\n")

    def handle_data(self, data):
        if self.skip:
            return
        self.parts.append(data if self.pre else re.sub(r"[ \t\r\n]+", " ", data))


def strip_html(src: str) -> str:
    """HTML to text: tags removed, entities decoded, block elements become line breaks/paragraphs,
    <pre> kept verbatim, <script>/<style>/<head> dropped."""
    p = _HTMLText()
    p.feed(src)
    p.close()
    lines = [re.sub(r"^ (?=\S)", "", ln.rstrip()) for ln in "".join(p.parts).split("\n")]
    return "\n".join(lines)


def clean_text(text: str, fmt: str = "text") -> str:
    """Clean one source text; fmt is 'roff' (unrendered man source), 'html' or 'text' (already plain)."""
    if fmt == "roff":
        text = strip_roff(text)
    elif fmt == "html":
        text = strip_html(text)
    return tidy(text)


def cut(text: str, limit: int = CUT) -> list[str]:
    """Cut text into pieces of at most `limit` characters at paragraph, else line, else any boundary."""
    pieces: list[str] = []
    while len(text) > limit:
        k = text.rfind("\n\n", limit // 2, limit)
        if k < 0:
            k = text.rfind("\n", limit // 2, limit)
        if k < 0:
            k = limit
        pieces.append(text[:k].strip("\n"))
        text = text[k:].strip("\n")
    if text.strip():
        pieces.append(text)
    return [p for p in pieces if p.strip()]


# ----------------------------------------------------------------------------------------------------------
# script checks

def _count(text: str, pred: Callable[[int], bool]) -> int:
    return sum(1 for c in text if pred(ord(c)))


def _is_cjk(o):  # unified ideographs + ext A + compatibility
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF


def _is_kana(o):
    return 0x3040 <= o <= 0x30FF


def _is_hangul(o):
    return 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F


def _is_greek(o):
    return 0x0370 <= o <= 0x03FF or 0x1F00 <= o <= 0x1FFF


def _is_cyrillic(o):
    return 0x0400 <= o <= 0x052F


_EN_STOP = {"the", "and", "of", "to", "is", "that", "this", "with", "for", "are", "be", "by", "if", "it", "not"}


def script_ok(kind: str, lang: str, text: str) -> bool:
    """Keep a document only if it is mostly in its kind's script (not an untranslated English page)."""
    letters = sum(1 for c in text if c.isalpha())
    if letters < 200:
        return False
    if kind == "latin":
        words = re.findall(r"[a-z]+", text.lower())
        stop = _EN_STOP - {"is", "an"} if lang == "ga" else _EN_STOP
        return bool(words) and sum(w in stop for w in words) / len(words) < 0.04
    pred = {"greek": _is_greek, "cyrillic": _is_cyrillic, "ko": _is_hangul,
            "zh": _is_cjk, "ja": lambda o: _is_cjk(o) or _is_kana(o)}[kind]
    frac = _count(text, pred) / letters
    if kind == "ja" and _count(text, _is_kana) < 0.05 * letters:
        return False
    return frac >= 0.35


# ----------------------------------------------------------------------------------------------------------
# sources

def _check_path(path: str) -> str:
    """Gettext catalogs and /work/shared/data are reserved for evaluation: never read them."""
    p = str(path)
    assert "LC_MESSAGES" not in p and not p.endswith((".mo", ".po", ".mo.gz", ".po.gz", ".pot")), p
    assert not p.startswith("/usr/share/locale") and "/work/shared/data" not in os.path.realpath(p), p
    return p


def _read_bytes(path: str) -> bytes:
    _check_path(path)
    _check_path(os.path.realpath(path))
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            return f.read()
    if path.endswith(".xz"):
        with lzma.open(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def _decode(raw: bytes, fallbacks: tuple[str, ...] = ()) -> str:
    for enc in ("utf-8",) + fallbacks:
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            pass
    return raw.decode("utf-8", errors="replace")


_PKG_OF: dict[str, str] = {}


def package_of(path: str) -> str:
    """Debian package owning `path` (from /var/lib/dpkg/info/*.list, read once)."""
    if not _PKG_OF:
        for lst in glob.glob("/var/lib/dpkg/info/*.list"):
            pkg = os.path.basename(lst)[:-5].split(":")[0]
            try:
                for line in open(lst, encoding="utf-8", errors="replace"):
                    line = line.rstrip("\n")
                    if line.startswith(("/usr/share/man/", "/usr/share/games/fortunes", "/usr/share/debian-reference")):
                        _PKG_OF[line] = pkg
            except OSError:
                pass
        _PKG_OF.setdefault("", "")
    return _PKG_OF.get(path, "?")


def licence_of(pkg: str) -> str:
    """The License: fields of a package's DEP-5 copyright file (or its first lines if free-form)."""
    if pkg.startswith("pypi:"):
        return {"pypi:faker": "MIT", "pypi:wordfreq": "data CC-BY-SA-4.0 (code Apache-2.0)"}.get(pkg, "?")
    path = f"/usr/share/doc/{pkg}/copyright"
    try:
        text = open(_check_path(path), encoding="utf-8", errors="replace").read()
    except OSError:
        return "?"
    lic = []
    for m in re.finditer(r"^License:\s*(.+)$", text, re.M):
        v = m.group(1).strip()
        if v not in lic:
            lic.append(v)
    if lic:
        return ", ".join(lic[:6])
    for key in ("GPL", "GNU General Public License", "BSD", "public domain", "GFDL", "Free Documentation",
                "Artistic", "MIT"):
        if key.lower() in text.lower():
            lic.append(key)
    return ", ".join(lic) or "see " + path


def render_man(path: str) -> str:
    """Render a man page to plain text with groff (no SGR, no overstrike), drop header/footer lines."""
    raw = _read_bytes(path)
    src = _decode(raw, ("latin-1",))
    if "\n.so " in "\n" + src[:200] and len(src) < 200:
        return ""  # a link page
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
    try:
        pre = subprocess.run(["preconv", "-e", "utf-8"], input=src.encode(), capture_output=True, timeout=30, env=env)
        r = subprocess.run(["groff", "-t", "-mandoc", "-Tutf8", "-P-c", "-P-b", "-P-u", "-rHY=0", "-dAD=l",
                            "-rLL=78n"], input=pre.stdout, capture_output=True, timeout=60, env=env)
        text = r.stdout.decode("utf-8", errors="replace")
    except (OSError, subprocess.SubprocessError):
        text = strip_roff(src)
    lines = text.split("\n")
    nonblank = [i for i, ln in enumerate(lines) if ln.strip()]
    if len(nonblank) >= 3:  # header 'LS(1)  User Commands  LS(1)' and footer
        lines = lines[nonblank[0] + 1:nonblank[-1]]
    # the body is indented 7 columns: dedent by the common indent of the text lines
    ind = [len(ln) - len(ln.lstrip(" ")) for ln in lines if ln.strip()]
    common = min([i for i in ind if i > 0] or [0])
    lines = [ln[common:] if ln[:common].strip() == "" else ln for ln in lines]
    return "\n".join(lines)


def _shuffled(paths: list[str], tag: str) -> list[str]:
    paths = sorted(paths)
    random.Random(f"{SEED}:{tag}").shuffle(paths)
    return paths


def man_docs(mandir: str) -> Iterator[tuple[str, str, str]]:
    """(name, text, path) of rendered man pages under /usr/share/man/<mandir>, shuffled."""
    files = [p for p in glob.glob(f"/usr/share/man/{mandir}/man*/*") if os.path.isfile(p) and not os.path.islink(p)]
    for p in _shuffled(files, "man:" + mandir):
        text = tidy(render_man(p))
        for k, piece in enumerate(cut(text)):
            yield f"man:{p}#{k}", piece, p


def debref_docs(lang: str) -> Iterator[tuple[str, str, str]]:
    files = sorted(glob.glob(f"/usr/share/debian-reference/*.{lang}.html"))
    for p in _shuffled(files, "debref:" + lang):
        text = clean_text(_decode(_read_bytes(p)), "html")
        for k, piece in enumerate(cut(text)):
            yield f"debref:{p}#{k}", piece, p


def fortune_docs(paths: list[str], fallbacks: tuple[str, ...] = ("latin-1",), chunk: int = 6000) -> Iterator[tuple[str, str, str]]:
    """Fortune cookie files ('%' separated), grouped into documents of about `chunk` characters."""
    files: set[str] = set()
    for p in paths:
        if not os.path.isfile(p) or p.endswith(".dat"):
            continue
        if not p.endswith(".u8") and os.path.getsize(p + ".u8") > 0 if os.path.isfile(p + ".u8") else False:
            p = p + ".u8"  # the UTF-8 twin of a legacy-encoded cookie file
        if p.endswith(".u8") and os.path.getsize(p) == 0:
            p = p[:-3]
        files.add(os.path.realpath(p))
    files = sorted(f for f in files if os.path.isfile(f))
    for p in _shuffled(files, "fortune"):
        cookies = [tidy(c) for c in re.split(r"\n%\n", _decode(_read_bytes(p), fallbacks).replace("\r\n", "\n"))]
        cookies = [c for c in cookies if c.strip()]
        buf: list[str] = []
        size, k = 0, 0
        for c in cookies + [None]:
            if c is None or (size + len(c) > chunk and buf):
                if buf:
                    yield f"fortune:{p}#{k}", "\n\n".join(buf), p
                    k += 1
                buf, size = [], 0
            if c is not None:
                buf.append(c)
                size += len(c) + 2


def _faker(locale: str):
    from faker import Faker
    return Faker(locale)


def faker_docs(locale: str, n_records: int = 40) -> Iterator[tuple[str, str, str]]:
    """Seeded realistic short records (contact cards, orders, messages) and lorem sentences of one locale."""
    try:
        fk = _faker(locale)
    except Exception:
        return
    import faker as _faker_pkg
    has_lorem = os.path.isdir(os.path.join(os.path.dirname(_faker_pkg.__file__), "providers", "lorem", locale))

    def safe(fn: str) -> str:
        try:
            return str(getattr(fk, fn)())
        except Exception:
            return ""

    i = 0
    while True:
        fk.seed_instance(f"{SEED}:{locale}:{i}")
        rng = random.Random(f"{SEED}:{locale}:{i}")
        recs: list[str] = []
        for _ in range(n_records):
            form = rng.randrange(5 if has_lorem else 3)
            if form == 0:
                lines = [safe("name"), safe("job"), safe("company"), safe("address"), safe("phone_number")]
            elif form == 1:
                lines = [f"{safe('date')}  {safe('name')}", safe("address"), f"{safe('company')} · {safe('phone_number')}"]
            elif form == 2:
                lines = [f"{safe('last_name')} {safe('first_name')}", safe("city"), safe("street_address"), safe("postcode")]
            elif form == 3:
                lines = [f"{safe('name')}: {fk.sentence(nb_words=rng.randint(5, 14))}"]
            else:
                lines = [fk.paragraph(nb_sentences=rng.randint(2, 5))]
            rec = "\n".join(ln for ln in lines if ln.strip())
            if rec:
                recs.append(rec)
        text = tidy("\n\n".join(recs))
        if not text:
            return
        yield f"faker:{locale}:{i}", text, f"faker/providers/*/{locale}"
        i += 1


_NOSPACE = {"zh", "ja"}
_STOP = {"zh": "。", "ja": "。", "ko": ".", "el": ".", "default": "."}
_KO_PARTICLES = set("이 는 을 하 에 다 의 고 은 가 를 도 어 게 에서 으로 로 와 과 습니다 는데 요 지 한 들 했 면 서 니 며 던 았 었 죠 아요 어요 네요".split())


def wordfreq_docs(lang: str, n_words: int = 20000, doc_chars: int = 4000) -> Iterator[tuple[str, str, str]]:
    """Seeded synthetic sentences drawn from a wordfreq frequency list (Zipf weighted, top `n_words`)."""
    try:
        import wordfreq
        words = wordfreq.top_n_list(lang, n_words)
    except Exception:
        return
    script = {"el": _is_greek, "ko": _is_hangul, "zh": _is_cjk, "ja": lambda o: _is_cjk(o) or _is_kana(o),
              "ru": _is_cyrillic, "uk": _is_cyrillic, "bg": _is_cyrillic, "sr": _is_cyrillic, "mk": _is_cyrillic,
              "be": _is_cyrillic}.get(lang)
    words = [w for w in words if any(c.isalpha() for c in w)
             and (script is None or all(script(ord(c)) for c in w if c.isalpha()))]
    if lang == "el":  # wordfreq case-folds final sigma to σ
        words = [re.sub(r"σ\b", "ς", w) for w in words]
    if not words:
        return
    weights = [1.0 / (r + 10) for r in range(len(words))]
    sep = "" if lang in _NOSPACE else " "
    stop = _STOP.get(lang, ".")
    i = 0
    while True:
        rng = random.Random(f"{SEED}:wordfreq:{lang}:{i}")
        paras, size = [], 0
        while size < doc_chars:
            sents = []
            for _ in range(rng.randint(2, 6)):
                ws = rng.choices(words, weights, k=rng.randint(4, 16))
                if lang == "ko":  # wordfreq splits particles and endings off: glue them back on
                    glued: list[str] = []
                    for w in ws:
                        if glued and w in _KO_PARTICLES:
                            glued[-1] += w
                        else:
                            glued.append(w)
                    ws = glued
                s = sep.join(ws)
                s = s[:1].upper() + s[1:]
                if rng.random() < 0.15 and lang not in _NOSPACE:
                    k = rng.randrange(1, len(ws))
                    s = sep.join(ws[:k]) + "," + sep + sep.join(ws[k:])
                    s = s[:1].upper() + s[1:]
                q = ";" if lang == "el" else ("？" if lang in _NOSPACE else "?")
                sents.append(s + (q if rng.random() < 0.1 else stop))
            p = ("" if lang in _NOSPACE else " ").join(sents)
            paras.append(p)
            size += len(p) + 2
        yield f"wordfreq:{lang}:{i}", tidy("\n\n".join(paras)), f"wordfreq/data/*_{lang}.msgpack.gz"
        i += 1


# ----------------------------------------------------------------------------------------------------------
# plan: kind -> language -> (budget in characters, [(source label, package, cap fraction, generator factory)])

F = "/usr/share/games/fortunes"


def _man(d):
    return ("man:" + d, "manpages", 1.0, lambda: man_docs(d))


def _debref(lang):
    return ("debref:" + lang, f"debian-reference-{lang}", 0.5, lambda: debref_docs(lang))


def _fortune(label, paths, fallbacks=("latin-1",), cap=0.5):
    return ("fortune:" + label, "fortunes", cap, lambda: fortune_docs(paths, fallbacks))


def _fk(locale, cap=0.3):
    return ("faker:" + locale, "pypi:faker", cap, lambda: faker_docs(locale))


def _wf(lang, cap=0.25):
    return ("wordfreq:" + lang, "pypi:wordfreq", cap, lambda: wordfreq_docs(lang))


def _glob(pattern):
    return sorted(glob.glob(pattern))


def plan() -> dict[str, dict[str, tuple[int, list]]]:
    big, small = 90_000, 40_000
    latin = {
        "de": (big, [_man("de"), _debref("de"), _fortune("de", _glob(f"{F}/de/*")), _fk("de_DE", 0.15)]),
        "fr": (big, [_man("fr"), _debref("fr"), _fk("fr_FR", 0.15)]),
        "es": (big, [_man("es"), _debref("es"), _fortune("es", _glob(f"{F}/es/*")), _fk("es_ES", 0.15)]),
        "it": (big, [_man("it"), _debref("it"), _fortune("it", _glob(f"{F}/it/*")), _fk("it_IT", 0.15)]),
        "pt": (big, [_man("pt"), _man("pt_BR"), _debref("pt"), _fortune("br", [f"{F}/brasil"]), _fk("pt_BR", 0.1), _fk("pt_PT", 0.1)]),
        "pl": (big, [_man("pl"), _fortune("pl", _glob(f"{F}/pl/*"), ("iso-8859-2",)), _fk("pl_PL", 0.15)]),
        "cs": (big, [_man("cs"), _fortune("cs", [q for q in _glob(f"{F}/cs/*") if "-sk" not in q], ("iso-8859-2",)), _fk("cs_CZ", 0.15)]),
        "hu": (big, [_man("hu"), _fk("hu_HU", 0.2)]),
        "ro": (big, [_man("ro"), _fk("ro_RO", 0.2), _wf("ro", 0.15)]),
        "tr": (big, [_man("tr"), _fk("tr_TR", 0.2)]),
        "nl": (big, [_man("nl"), _fk("nl_NL", 0.2)]),
        "sv": (big, [_man("sv"), _fk("sv_SE", 0.2)]),
        "da": (big, [_man("da"), _fk("da_DK", 0.2)]),
        "fi": (big, [_man("fi"), _fk("fi_FI", 0.2)]),
        "nb": (big, [_man("nb"), _fk("no_NO", 0.2)]),
        "vi": (big, [_man("vi"), _fk("vi_VN", 0.3), _wf("vi", 0.2)]),
        "sk": (small, [_fortune("sk", _glob(f"{F}/sk/*"), ("iso-8859-2",), cap=0.4), _fk("sk_SK", 0.4), _wf("sk", 0.4)]),
        "hr": (small, [_man("hr"), _fk("hr_HR", 0.5), _wf("hr", 0.5)]),
        "sl": (small, [_man("sl"), _fk("sl_SI", 0.5), _wf("sl", 0.5)]),
        "lt": (small, [_fk("lt_LT", 0.3), _wf("lt", 0.7)]),
        "lv": (small, [_fk("lv_LV", 0.3), _wf("lv", 0.7)]),
        "et": (small, [_fk("et_EE", 1.0)]),
        "is": (small, [_fk("is_IS", 0.3), _wf("is", 0.7)]),
        "ca": (small, [_wf("ca", 1.0)]),
        "ga": (small, [_fortune("ga", _glob(f"{F}/ga/*"), cap=1.0), _fk("ga_IE", 0.3)]),
    }
    cyr = {
        "ru": (300_000, [_man("ru"), _fortune("ru", _glob(f"{F}/ru/*"), ("koi8-r", "cp1251")), _fk("ru_RU", 0.15)]),
        "uk": (250_000, [_man("uk"), _fk("uk_UA", 0.2), _wf("uk", 0.15)]),
        "bg": (150_000, [_fortune("bg", _glob(f"{F}/bg/*"), ("cp1251",), cap=1.0), _fk("bg_BG", 0.3), _wf("bg", 0.3)]),
        "sr": (150_000, [_man("sr"), _wf("sr", 0.2)]),
        "mk": (100_000, [_man("mk"), _fk("mk_MK", 0.3), _wf("mk", 0.3)]),
    }
    return {
        "latin": latin,
        "greek": {"el": (450_000, [_man("el"), _fk("el_GR", 0.5), _wf("el", 0.5)])},
        "cyrillic": cyr,
        "zh": {
            "zh_CN": (330_000, [_man("zh_CN"), _debref("zh-cn"), _fortune("zh", [f"{F}/chinese.u8", f"{F}/tang300.u8", f"{F}/song100.u8"], ("gb18030",), cap=0.3), _fk("zh_CN", 0.1), _wf("zh", 0.05)]),
            "zh_TW": (330_000, [_man("zh_TW"), _debref("zh-tw"), _fk("zh_TW", 0.15)]),
        },
        "ja": {"ja": (600_000, [_man("ja"), _debref("ja"), _fk("ja_JP", 0.1), _wf("ja", 0.05)])},
        "ko": {"ko": (320_000, [_man("ko"), _fk("ko_KR", 0.45), _wf("ko", 0.45)])},
    }


def collect(kind: str, lang: str, budget: int, sources: list, log=None) -> tuple[list[tuple[str, str]], dict]:
    """Fill a language's budget from its sources: always draw the next document from the source that has
    given the fewest characters so far, within each source's cap (a fraction of the budget)."""
    gens = {label: fac() for label, _pkg, _cap, fac in sources}
    taken = {label: 0 for label, *_ in sources}
    caps = {label: int(cap * budget) for label, _pkg, cap, _ in sources}
    info = {label: {"package": pkg, "paths": set(), "chars": 0} for label, pkg, *_ in sources}
    live = set(gens)
    docs: list[tuple[str, str]] = []
    total = 0
    seen: set[str] = set()
    while total < budget and live:
        label = min(live, key=lambda lb: (taken[lb], lb))
        try:
            name, text, path = next(gens[label])
        except StopIteration:
            live.discard(label)
            continue
        _check_path(path) if path.startswith("/") else None
        if not script_ok(kind, lang, text) or name in seen:
            continue
        seen.add(name)
        text = text[: min(DOC_MAX, budget - total + 2000)]
        docs.append((name, text))
        taken[label] += len(text)
        total += len(text)
        info[label]["chars"] += len(text)
        if path.startswith("/"):
            pkg = package_of(path) if info[label]["package"] in ("manpages", "fortunes") or path.startswith("/usr/share/man") else info[label]["package"]
            info[label]["paths"].add((pkg, re.sub(r"/man\d\w*/[^/]+$", "/man*/*", path)))
        else:
            info[label]["paths"].add((info[label]["package"], path))
        if taken[label] >= caps[label]:
            live.discard(label)
    if log:
        log(f"  {kind}/{lang}: {total} chars, " + ", ".join(f"{lb}={n}" for lb, n in taken.items()))
    return docs, info


def build_script_corpus(out: str, kinds: tuple[str, ...] = KINDS, verbose: bool = True) -> dict[str, dict[str, int]]:
    """Build the multilingual kinds into `out`; returns {kind: {split: characters}} (also merged into sizes.json)."""
    from ocr_model.data import _is_heldout

    os.makedirs(out, exist_ok=True)
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if verbose else None
    sizes: dict[str, dict[str, int]] = {}
    meta: dict[str, dict] = {}
    pl = plan()
    for kind in kinds:
        docs: list[tuple[str, str]] = []
        kmeta = {"languages": {}, "sources": []}
        for lang, (budget, sources) in pl[kind].items():
            ld, info = collect(kind, lang, budget, sources, log)
            docs += ld
            kmeta["languages"][lang] = sum(len(t) for _, t in ld)
            for label, inf in info.items():
                if not inf["chars"]:
                    continue
                pkgs: dict[str, set] = {}
                for pkg, path in inf["paths"]:
                    pkgs.setdefault(pkg, set()).add(path)
                for pkg, paths in sorted(pkgs.items()):
                    kmeta["sources"].append({"lang": lang, "source": label, "package": pkg, "licence": licence_of(pkg),
                                             "paths": sorted(paths)[:20], "n_paths": len(paths)})
                kmeta["sources"].append({"lang": lang, "source": label, "chars": inf["chars"]})
        for name, text in docs:
            assert RS not in text and not _CTRL.search(text), name
        sizes[kind] = {}
        for split in ("train", "heldout"):
            chosen = [text for name, text in docs if _is_heldout(name) == (split == "heldout")]
            with lzma.open(os.path.join(out, f"{kind}.{split}.txt.xz"), "wt", encoding="utf-8",
                           preset=9 | lzma.PRESET_EXTREME) as f:
                f.write(RS.join(chosen))
            sizes[kind][split] = sum(len(t) for t in chosen)
        kmeta["chars"] = sizes[kind]
        kmeta["documents"] = len(docs)
        meta[kind] = kmeta
        if log:
            log(f"{kind}: {sizes[kind]} ({len(docs)} documents)")
    sp = os.path.join(out, "sizes.json")
    merged = json.load(open(sp)) if os.path.exists(sp) else {}
    merged.update(sizes)
    with open(sp, "w") as f:
        json.dump(merged, f, indent=1)
    for fn in ("sources.json",):
        path = os.path.join(out, fn)
        old = {}
        if os.path.exists(path):
            try:
                old = json.load(open(path))
            except ValueError:
                old = {}
        old.update(meta)
        with open(path, "w") as f:
            json.dump(old, f, indent=1, ensure_ascii=False)
    return sizes


def _cli() -> None:
    ap = argparse.ArgumentParser(description="Build the multilingual (non-English) corpus kinds from installed packages.")
    ap.add_argument("--out", required=True, help="corpus directory to write <kind>.<split>.txt.xz, sizes.json, sources.json into")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated kinds to build (default: {','.join(KINDS)})")
    ap.add_argument("--quiet", action="store_true", help="do not print per-language progress to stderr")
    a = ap.parse_args()
    kinds = tuple(k for k in a.kinds.split(",") if k)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        ap.error(f"unknown kinds {bad}; choose from {KINDS}")
    sizes = build_script_corpus(a.out, kinds, verbose=not a.quiet)
    print(json.dumps(sizes, indent=1))


if __name__ == "__main__":
    _cli()
