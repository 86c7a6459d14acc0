"""`optimem check STORE [--namespace NS] [--repair]`: what it prints and its exit status."""

from __future__ import annotations

from optimem.cli import main

FILLER = " ".join(["apple river engine violet cloud pencil harbor garden"] * 20)


def test_check_command(make_memory, tmp_path, capsys):
    store = tmp_path / "store"
    m = make_memory(store, working_tokens=600)
    ids = [m.add(f"turn {i} {FILLER}") for i in range(6)]
    m.close()
    assert main(["check", str(store)]) == 0
    assert "ok" in capsys.readouterr().out
    page = next((store / "pages").rglob("*.png"))
    page.write_bytes(page.read_bytes()[:50])
    (page.parent / ("cd" * 16 + ".png")).write_bytes(b"stray")
    assert main(["check", str(store)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED page" in out and "turns whose pages are damaged" in out and "unreferenced file" in out
    assert main(["check", str(store), "--repair"]) == 1  # the damaged page cannot be rebuilt: still a problem
    out = capsys.readouterr().out
    assert "moved to quarantine/" in out and not (page.parent / ("cd" * 16 + ".png")).exists()
    assert any(str(i) in out for i in ids)
    assert main(["check", str(tmp_path / "nowhere")]) == 2
    assert "no optimem store" in capsys.readouterr().err
