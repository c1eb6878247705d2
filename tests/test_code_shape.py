"""The package stays in small pieces: no module over 600 lines, no class over 450, no function
over 60. A piece that outgrows these has more than one concept in it; split it at its seams."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "katcp_inspect"
LIMITS = {"module": 600, "class": 450, "function": 60}
MODULES = sorted(PACKAGE.rglob("*.py"))


def oversized(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    found = []
    if len(text.splitlines()) > LIMITS["module"]:
        found.append(f"module {path.name}: {len(text.splitlines())} lines")
    for node in ast.walk(ast.parse(text)):
        kind = ("class" if isinstance(node, ast.ClassDef) else "function"
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None)
        if kind is not None:
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            if size > LIMITS[kind]:
                found.append(f"{kind} {node.name} in {path.name}: {size} lines")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_piece_is_oversized(path: Path) -> None:
    assert oversized(path) == []
