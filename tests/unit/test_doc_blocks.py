"""Every fenced block of README.md, docs/ and examples/ is run by a test or by CI.

The project's rule (DESIGN.md: "every code block in them is run by a test"), checked for each
block as the pages are, so a new block without a runner fails here:

- a page whose runner takes every block of it through ``tests/doc_blocks.py`` is
  listed in ``WHOLE_PAGES``;
- on any other page a block says who runs it, in an HTML comment on the line right above its
  fence (readers of the rendered page do not see it): ``<!-- run by PATH ... -->`` (or
  ``applied by``), naming test files or ``.ci/run``, one of which must exist and name the page
  (so a runner that stops reading the page is noticed); or ``<!-- output: REASON -->`` for what
  a command prints, which nothing runs.

It also holds README's commands to what CI and the tests run.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex

from ..doc_blocks import ROOT, Block, blocks, pages

WHOLE_PAGES = {
    "docs/python-api.md": "tests/integration/api/test_python_api_doc.py",
    "docs/migrating-from-dask-kubernetes.md": "tests/compat/test_migration_doc.py",
    "docs/airflow-provider.md": "tests/airflow/test_provider_doc.py",
    "docs/profiles.md": "tests/unit/test_profiles_doc.py",
}
_COMMENT = re.compile(r"^\s*<!--(.*)-->\s*$")
_RUNNER = re.compile(r"^\s*(?:run|applied) by (.+)$", re.S)
_PATH = re.compile(r"(?:tests/[\w/]+\.py|\.ci/run)")


def markers(block: Block) -> list[str]:
    """The HTML comments on the lines right above ``block``'s fence, nearest last."""
    lines = (ROOT / block.page).read_text().splitlines()[:block.line - 1]
    found: list[str] = []
    while lines and (comment := _COMMENT.match(lines[-1])):
        found.insert(0, comment.group(1).strip())
        lines.pop()
    return found


def names_the_page(path: str, page: str) -> bool:
    runner = ROOT / path
    return runner.is_file() and page in runner.read_text()


def problem(block: Block) -> str | None:
    """Why ``block`` has no runner, or None when it has one."""
    if block.page in WHOLE_PAGES:
        return None  # test_whole_page_runners checks the runner
    for marker in markers(block):
        if marker.startswith("output:"):
            return None if marker.removeprefix("output:").strip() else "an output with no reason"
        if runner := _RUNNER.match(marker):
            paths = _PATH.findall(runner.group(1))
            if any(names_the_page(p, block.page) for p in paths):
                return None
            return f"none of {paths} exists and names {block.page}"
    return "no <!-- run by ... --> or <!-- output: ... --> comment above it"


def test_every_block_has_a_runner() -> None:
    found = [b for page in pages() for b in blocks(page)]
    assert len(found) > 30  # the reader still finds the pages' blocks
    missing = [f"{b}: {why}" for b in found if (why := problem(b))]
    assert not missing, "blocks no test runs:\n" + "\n".join(missing)


def test_whole_page_runners_read_the_page_through_the_shared_reader() -> None:
    for page, runner in WHOLE_PAGES.items():
        text = (ROOT / runner).read_text()
        assert page.split("/")[-1] in text and "doc_blocks import" in text, runner
        assert blocks(ROOT / page), page


def test_a_block_without_a_runner_is_reported() -> None:
    """The check itself: an unmarked block, a runner that does not name the page."""
    page = "docs/cli.md"
    lines = (ROOT / page).read_text().splitlines()
    first = blocks(ROOT / page)[0]
    assert markers(first) and problem(first) is None
    bare = Block(page, lines.index("## Run a job file") + 1, "bash", "")
    assert problem(bare) == "no <!-- run by ... --> or <!-- output: ... --> comment above it"
    assert not names_the_page("tests/unit/test_lint.py", page)


def readme_block(start: str) -> Block:
    (block,) = [b for b in blocks(ROOT / "README.md") if b.code.startswith(start)]
    return block


def test_the_readmes_test_command_is_what_ci_runs() -> None:
    steps = readme_block("python3 -m venv .venv && .venv/bin/pip install -e '.[test]'") \
        .code.strip().split(" && ")
    assert steps == ["python3 -m venv .venv", ".venv/bin/pip install -e '.[test]'",
                     ".venv/bin/python -m pytest"], steps
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^python3 -m venv \.venv$", ci, re.M)
    assert re.search(r"^\.venv/bin/python -m pip install --quiet -e '\.\[test\]'$", ci, re.M)
    assert re.search(r"^\.venv/bin/python -m pytest \|\| leg1=\$\?$", ci, re.M)  # no arguments


def test_the_readmes_first_command_installs_declared_extras_and_runs_what_a_test_runs() -> None:
    steps = readme_block("python3 -m venv .venv && .venv/bin/pip install -e '.[local").code \
        .strip().split(" && ")
    install, run = shlex.split(steps[1]), shlex.split(steps[2])
    extras = re.fullmatch(r"\.\[([\w,-]+)\]", install[-1]).group(1).split(",")  # type: ignore[union-attr]
    declared = importlib.metadata.distribution("dask-kube-jobs").metadata.get_all("Provides-Extra")
    assert set(extras) <= set(declared or []), extras
    assert run[0] == ".venv/bin/dask-kube-jobs"
    args = ", ".join(f'"{a}"' for a in run[1:])
    assert f"run({args}, env=env)" in (ROOT / "tests/integration/api/test_cli_jobs.py").read_text()
