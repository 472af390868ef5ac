"""Every snippet in README.md, extracted and run: the README stays true.

The conventions the README follows (a reader pastes it top to bottom):

* ```python blocks (and ```pycon ones: their `>>> `/`... ` lines; the rest is output, not
  compared) run in README order, in ONE namespace for the whole file (as one Python
  session), with a fresh temporary directory as the working directory: a snippet may use what
  an earlier one defined, and data it needs it makes itself (small and synthetic).
* ```bash / ```sh / ```shell / ```console blocks are run when every command in them is a
  `plane ...` command (a `$ ` prompt, comments and `\\` continuations are allowed): in the
  same directory, after the Python snippets above them; each must exit 0.
* A block that cannot run here (a cluster, `make`, `pip`, `docker`, credentials) carries the
  line `<!-- readme-test: skip (the reason) -->` right above its fence: it is reported as a
  skipped test with that reason, never left out silently. `<!-- readme-test: slow -->` runs
  a block only under `-m slow` (for snippets over ~30 s); later snippets must not depend on
  what a slow one defines.
* Any other language (```text for output, ```yaml, ```json, ...) is shown, not run. A fence
  with no language is an error: say what it is.

Each block is one test case named after its README section and line, so a failure points at
the snippet; running one case alone first runs the Python snippets before it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

PYTHON = {"python", "py", "python3", "pycon"}
SHELL = {"bash", "sh", "shell", "console"}
MARK = re.compile(r"^\s*<!--\s*readme-test:\s*(skip|slow)\b\s*(?:\((.*)\))?\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)[^`]*$")


@dataclass
class Block:
    """One fenced code block of the README."""

    section: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None = None  # the reason, when marked skip
    slow: bool = False

    @property
    def id(self) -> str:
        slug = re.sub(r"[^0-9A-Za-z]+", "-", self.section).strip("-").lower() or "top"
        return f"{slug}-L{self.line}"


def _slug_heading(line: str) -> str | None:
    m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
    return m.group(1) if m else None


def parse(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, with the section they are in and their marks."""
    lines = text.splitlines()
    out: list[Block] = []
    section, i = "top", 0
    while i < len(lines):
        line = lines[i]
        m = FENCE.match(line)
        if not m:
            heading = _slug_heading(line)
            if heading is not None:
                section = heading
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        body = []
        j = i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence[0] * len(fence))
                                      and lines[j].strip().strip(fence[0]) == ""):
            body.append(lines[j])
            j += 1
        if j == len(lines):
            raise AssertionError(f"README.md line {i + 1}: a fence that is never closed")
        code = textwrap.dedent("\n".join(b[len(indent):] if b.startswith(indent) else b
                                         for b in body))
        prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        mark = MARK.match(prev)
        if lang == "pycon":  # the prompted lines are the code
            code = "\n".join(ln[4:] for ln in code.splitlines()
                             if ln.startswith((">>> ", "... ")) or ln in (">>>", "..."))
        blk = Block(section, i + 1, lang, code + "\n")
        if mark and mark.group(1) == "skip":
            blk.skip = (mark.group(2) or "").strip() or "no reason given"
        elif mark:
            blk.slow = True
        out.append(blk)
        i = j + 1
    return out


BLOCKS = parse(README.read_text(encoding="utf-8"))
RUN = [b for b in BLOCKS if b.lang in PYTHON | SHELL or b.lang == ""]


def _params() -> list[Any]:
    return [pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.slow else [])
            for b in RUN]


# ---- running -----------------------------------------------------------------------------------
@dataclass
class Session:
    """The reader's session: one namespace, one working directory, what has run so far."""

    cwd: Path
    ns: dict[str, Any] = field(default_factory=lambda: {"__name__": "__readme__"})
    done: dict[int, str | None] = field(default_factory=dict)  # line -> None ok, or the error

    def run_python(self, b: Block) -> None:
        src = "\n" * (b.line) + b.code  # line numbers in tracebacks are README lines
        old = os.getcwd()
        os.chdir(self.cwd)
        try:
            exec(compile(src, str(README), "exec"), self.ns)
        finally:
            os.chdir(old)

    def run_shell(self, b: Block) -> None:
        commands = shell_commands(b.code, b.lang == "console")
        assert commands, f"README.md line {b.line}: a shell block with no command"
        bad = [c for c in commands if not c.startswith("plane ")]
        assert not bad, (f"README.md line {b.line}: {bad[0]!r} is not a `plane` command; put "
                         "`<!-- readme-test: skip (why) -->` above the fence if it cannot run "
                         "in a test")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
        script = ('plane() { "$PLANE_PY" -m plane.cli "$@"; }\n'
                  + "\n".join(commands) + "\n")
        env["PLANE_PY"] = sys.executable
        for cmd in commands:  # one at a time, so a failure names its command
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", script.split("\n")[0]
                                + "\n" + cmd], cwd=self.cwd, env=env, capture_output=True,
                               text=True, timeout=300)
            assert r.returncode == 0, (f"README.md line {b.line}: `{cmd}` exited "
                                       f"{r.returncode}\n{r.stdout}\n{r.stderr}")


def shell_commands(code: str, console: bool = False) -> list[str]:
    """The commands of a shell block: comments dropped, `\\` continuations joined; in a
    ```console block only the lines after a `$ ` prompt (the rest is output)."""
    out: list[str] = []
    cont = ""
    for raw in code.splitlines():
        line = raw.strip()
        if not cont:
            if console:
                if not line.startswith("$ "):
                    continue  # output
                line = line[2:].strip()
            if not line or line.startswith("#"):
                continue
        line = cont + line
        if line.endswith("\\"):
            cont = line[:-1].rstrip() + " "
            continue
        cont = ""
        out.append(re.sub(r"\s+#\s.*$", "", line))
    if cont:
        out.append(cont.strip())
    return out


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    ray = sys.modules.get("ray")
    ray_before = ray is not None and ray.is_initialized()
    yield Session(tmp_path_factory.mktemp("readme"))
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized() and not ray_before:
        ray.shutdown()  # the snippets started it: later tests start their own


def _catch_up(session: Session, upto: Block) -> None:
    """Run the Python snippets above `upto` that have not run (when a case runs alone)."""
    for b in RUN:
        if b.line >= upto.line:
            return
        if b.line in session.done or b.lang not in PYTHON or b.skip is not None or b.slow:
            continue  # a slow snippet is deselected by default: nothing may depend on it
        try:
            session.run_python(b)
            session.done[b.line] = None
        except BaseException:
            session.done[b.line] = traceback.format_exc()
        if session.done[b.line] is not None:
            pytest.fail(f"the snippet at README.md line {b.line} ({b.section}) failed, and "
                        f"this one runs after it:\n{session.done[b.line]}")


@pytest.mark.parametrize("block", _params())
def test_readme_snippet(block: Block, session: Session) -> None:
    if block.lang == "":
        pytest.fail(f"README.md line {block.line}: a code fence without a language; use "
                    "```python or ```bash (run by this test) or ```text (shown only)")
    if block.skip is not None:
        pytest.skip(f"README.md line {block.line}: {block.skip}")
    _catch_up(session, block)
    if block.lang in PYTHON:
        try:
            session.run_python(block)
        except BaseException:
            session.done[block.line] = traceback.format_exc()
            raise
        session.done[block.line] = None
    else:
        session.run_shell(block)


def test_readme_leaves_no_dataset_with_uncommitted_writes(session: Session) -> None:
    """A reader who follows the README to the end loses nothing: every dataset its snippets
    leave open is committed (writes never flushed are lost at exit)."""
    import plane

    _catch_up(session, Block("end", 10**9, "", ""))
    open_ds = {k: v for k, v in session.ns.items() if isinstance(v, plane.Dataset)}
    assert open_ds, "the README's snippets should leave datasets to look at"
    assert not [k for k, v in open_ds.items() if v.has_changes], (
        "README snippets leave writes uncommitted in "
        f"{[k for k, v in open_ds.items() if v.has_changes]}: commit them in the snippet")


def test_parser_sees_marks_and_sections() -> None:
    """The extractor itself: sections, languages, indented fences, marks and their reasons."""
    text = textwrap.dedent("""\
        # T
        ```python
        x = 1
        ```
        ## Sec two
        <!-- readme-test: skip (needs a cluster) -->
        ```bash
        kubectl apply -f x.yaml
        ```
        1. step
           ```console
           $ plane log pets \\
               --limit 2
           ```
        <!-- readme-test: slow -->

        ```python
        y = 2
        ```
        ```text
        output
        ```
        ```pycon
        >>> for i in range(2):
        ...     i
        0
        1
        ```
        """)
    blocks = parse(text)
    assert [(b.section, b.line, b.lang) for b in blocks] == [
        ("T", 2, "python"), ("Sec two", 7, "bash"), ("Sec two", 11, "console"),
        ("Sec two", 17, "python"), ("Sec two", 20, "text"), ("Sec two", 23, "pycon")]
    assert blocks[1].skip == "needs a cluster" and blocks[0].skip is None
    assert blocks[2].code == "$ plane log pets \\\n    --limit 2\n"
    assert shell_commands(blocks[2].code, True) == ["plane log pets --limit 2"]
    assert blocks[3].slow and not blocks[2].slow
    assert blocks[0].id == "t-L2" and blocks[3].id == "sec-two-L17"
    assert blocks[5].code == "for i in range(2):\n    i\n"
