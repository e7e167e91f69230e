"""The fenced code blocks of the project's pages (README.md, docs/, examples/), for the tests
that run them.

One reader for every such test, so that the tests which run a page and the test which checks
that every block has a runner (``tests/unit/test_doc_blocks.py``) see the same blocks: a fence
is three backticks at the start of a line (or indented, inside a list item), an optional
language word, and the block ends at the next line that starts with three backticks; an
indented block's text is dedented.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^[ \t]*```([\w+-]*)[ \t]*\n(.*?)^[ \t]*```", re.S | re.M)


@dataclass(frozen=True)
class Block:
    """One fenced block: its page (relative to the repository), first line, language
    (``""`` when the fence names none) and text."""

    page: str
    line: int
    lang: str
    code: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.lang or 'no language'})"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order."""
    text = page.read_text()
    name = page.resolve().relative_to(ROOT).as_posix()
    return [Block(name, text.count("\n", 0, m.start()) + 1, m.group(1),
                  textwrap.dedent(m.group(2)))
            for m in _FENCE.finditer(text)]


def pages() -> list[Path]:
    """The pages whose blocks must run: README.md, docs/*.md and every text file of
    examples/ (the manifests there hold no fences, but a fence added to one is found)."""
    examples = [p for p in sorted((ROOT / "examples").iterdir())
                if p.is_file() and p.suffix in (".md", ".yaml", ".yml", ".py", ".txt")]
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *examples]
