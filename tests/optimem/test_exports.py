"""The public API is explicit: __all__ lists exactly these names, and each of them exists."""

from __future__ import annotations

import optimem

EXPECTED = {
    "Memory",
    "Recollection",
    "Stats",
    "ConsolidationReport",
    "TurnId",
    "ForgettingPolicy",
    "Embedder",
    "E5Embedder",
    "MiniLMEmbedder",
    "HashingEmbedder",
    "PageReader",
    "Reading",
    "OptimemError",
    "InvalidInputError",
    "InvalidNamespaceError",
    "NotFoundError",
    "StoreError",
    "StoreLockedError",
    "StoreFormatError",
    "StoreClosedError",
    "ReadOnlyError",
    "PageDamagedError",
    "StoreFullError",
    "EmbedderError",
    "ModelError",
    "ModelNotFoundError",
    "Turn",
    "__version__",
}


def test_exported_names_do_not_drift():
    assert set(optimem.__all__) == EXPECTED
    assert len(optimem.__all__) == len(EXPECTED)  # no duplicates
    for name in optimem.__all__:
        assert hasattr(optimem, name), name


def test_importing_optimem_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, optimem; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
