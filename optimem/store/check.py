"""`optimem check`: verify one namespace of a store and, with repair=True, fix what can be fixed.

Checked: the manifest and the database's store id (Archive.open refuses a mismatch), every page file of
the namespace (inside the store, present, SHA-256 as recorded, a complete PNG), the saved FAISS index
against SQLite, and files under pages/ that no page of any namespace references.
Repaired: the index is rebuilt from the vectors in SQLite and written; unreferenced files are moved to
quarantine/<UTC time>/ (never deleted). Damaged pages cannot be rebuilt (the text they show exists
nowhere else): they are listed with their turns, to restore from a backup or forget.
"""

from __future__ import annotations

from optimem.errors import PageDamagedError
from optimem.store.archive import Archive
from optimem.store.records import CheckReport, DamagedPage

__all__ = ["check_store", "format_report"]

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
    unreferenced = tuple(archive.unreferenced_files())
    rebuilt, quarantined = False, ()
    if repair:
        if problem is not None:
            archive.rebuild_index()
            rebuilt = True
        quarantined = tuple(archive.quarantine(unreferenced))
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
