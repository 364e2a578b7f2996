"""Every escape from the type checker in ``event_tasks`` says why, on its line.

mypy checks the package with untyped definitions disallowed (``make lint``). Where a type is
still ``Any``, a ``cast`` or a ``type: ignore``, a comment on the same line (or a comment line
right above it) says why: a library without types, a value Celery hands over untyped, JSON.
"""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

import event_tasks

PACKAGE = Path(event_tasks.__file__).parent


def escapes(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` for each ``Any``, ``cast(`` or ``type: ignore`` without a reason beside it."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.add(tok.start[0])
    lines = source.splitlines()

    def explained(line: int) -> bool:
        here = comments.get(line, "")
        if here:
            reason = here.split("type: ignore", 1)[-1] if "type: ignore" in here else here
            reason = reason.split("]", 1)[-1] if reason.lstrip().startswith("[") else reason
            if reason.strip(" #"):
                return True
        above = line - 1
        return above in comments and above not in code_lines

    found = []
    in_import = False
    for i, tok in enumerate(tokens):
        if (
            tok.type == tokenize.NAME
            and tok.string in ("import", "from")
            and tok.start[1] == len(lines[tok.start[0] - 1]) - len(lines[tok.start[0] - 1].lstrip())
        ):
            in_import = True
        if tok.type == tokenize.NEWLINE:
            in_import = False
        line = tok.start[0]
        if tok.type == tokenize.NAME and tok.string == "Any" and not in_import and not explained(line):
            found.append((line, "Any"))
        elif tok.type == tokenize.NAME and tok.string == "cast" and i + 1 < len(tokens) and tokens[i + 1].string == "(":
            if not in_import and not explained(line):
                found.append((line, "cast"))
        elif tok.type == tokenize.COMMENT and "type: ignore" in tok.string and not explained(line):
            found.append((line, "type: ignore"))
    return sorted(set(found))


def test_every_any_cast_and_ignore_in_the_package_says_why():
    missing = [
        f"event_tasks/{path.relative_to(PACKAGE)}:{line}: {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.parts
        for line, what in escapes(path.read_text())
    ]
    assert not missing, "say why in a comment on the line (or the line above):\n" + "\n".join(missing)


def test_the_check_itself():
    source = (
        "from typing import Any, cast\n"
        "def f(x: Any) -> None: ...\n"
        "def g(x: Any) -> None: ...  # Celery passes it untyped\n"
        "# kombu's message: no types\n"
        "def h(x: Any) -> None: ...\n"
        "y = cast(int, 1)\n"
        "z = 1  # type: ignore[misc]\n"
        "w = 1  # type: ignore[misc]  # the stubs are wrong here\n"
    )
    assert escapes(source) == [(2, "Any"), (6, "cast"), (7, "type: ignore")]
