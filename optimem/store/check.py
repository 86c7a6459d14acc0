"""`optimem check`: verify one namespace of a store and, with repair=True, fix what can be fixed.

Checked: the manifest and the database's store id (Archive.open refuses a mismatch), every page file of
the namespace (inside the store, present, SHA-256 as recorded, a complete PNG), the saved FAISS index
against SQLite, and files under pages/ that no page of any namespace references.
Repaired: the index is rebuilt from the vectors in SQLite and written; unreferenced files are moved to
quarantine/<UTC time>/ (never deleted). Damaged pages cannot be rebuilt (the text they show exists
nowhere else): they are listed with their turns, to restore from a backup or forget.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from optimem.errors import PageDamagedError
from optimem.store.archive import Archive, _guard
from optimem.store.files import QUARANTINE, TMP_NAME
from optimem.store.records import CheckReport, DamagedPage

__all__ = ["check_store", "format_report", "unreferenced_files", "quarantine"]

_PNG_HEAD, _PNG_TAIL = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


def check_store(archive: Archive, *, repair: bool = False) -> CheckReport:
    damaged = []
    pages = archive.pages()
    for page in pages:
        try:
            data = archive.read_page(page)
        except PageDamagedError as e:
            damaged.append(DamagedPage(page.id, page.file, str(e), page.turn_ids))
            continue
        if not (data.startswith(_PNG_HEAD) and data.endswith(_PNG_TAIL)):
            damaged.append(DamagedPage(page.id, page.file, "not a complete PNG file", page.turn_ids))
    problem = archive.index_problem()
    unreferenced = tuple(unreferenced_files(archive))
    rebuilt, quarantined = False, ()
    if repair:
        if problem is not None:
            archive.rebuild_index()
            rebuilt = True
        quarantined = tuple(quarantine(archive, unreferenced))
    return CheckReport(
        namespace=archive.namespace,
        store_id=archive.store_id(),
        pages_checked=len(pages),
        damaged_pages=tuple(damaged),
        index_problem=problem,
        index_rebuilt=rebuilt,
        unreferenced_files=unreferenced,
        quarantined=quarantined,
    )


def unreferenced_files(a: Archive) -> list[str]:
    """Files under pages/ (any namespace) that no page of the store references, and temp files:
    relative paths. Compared by file name, so a folder whose case changed on a case-insensitive
    filesystem still counts as referenced."""
    with a._mutex:
        live = {Path(r[0]).name for r in a._conn().execute("SELECT file FROM pages")}
        root = a.path / "pages"
        out = []
        if root.is_dir():
            for f in sorted(root.rglob("*")):
                if (f.is_file() or f.is_symlink()) and f.name not in live:
                    out.append(f.relative_to(a.path).as_posix())
        for d in (a.path, a.path / "index"):
            if d.is_dir():
                out += [f.relative_to(a.path).as_posix() for f in sorted(d.iterdir()) if TMP_NAME.fullmatch(f.name)]
        return out


@_guard("quarantining files")
def quarantine(a: Archive, rel_paths: Sequence[str]) -> list[str]:
    """Move these files (relative to the store) into quarantine/<UTC time>/, keeping their relative
    paths; never deletes anything. Returns where they went (relative paths)."""
    with a._mutex:
        a._writable()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        moved = []
        for rel in rel_paths:
            src = a.path / rel
            if not src.parent.resolve().is_relative_to(a.path.resolve()):
                continue  # only entries really inside the store (a symlink itself is moved, not its target)
            dst = a.path / QUARANTINE / stamp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            moved.append(dst.relative_to(a.path).as_posix())
        return moved


def format_report(report: CheckReport) -> list[str]:
    """The report as lines for a terminal."""
    lines = [f"namespace {report.namespace}: {report.pages_checked} pages checked"]
    for p in report.damaged_pages:
        lines.append(f"  DAMAGED page {p.page_id} ({p.file}), turns {list(p.turn_ids)}: {p.problem}")
    if report.damaged_pages:
        lines.append(f"  turns whose pages are damaged: {list(report.damaged_turns)} (restore the files from a "
                     "backup, or forget these turns)")
    if report.index_problem:
        lines.append(f"  index: {report.index_problem}" + ("; rebuilt from the vectors" if report.index_rebuilt else
                                                           "; --repair rebuilds it"))
    for f in report.unreferenced_files:
        lines.append(f"  unreferenced file {f}" + ("" if report.quarantined else " (--repair moves it to quarantine/)"))
    for f in report.quarantined:
        lines.append(f"  moved to {f}")
    lines.append("  ok" if report.ok else "  PROBLEMS FOUND")
    return lines
