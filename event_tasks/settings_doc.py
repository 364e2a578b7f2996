"""``docs/settings.md``'s table of every setting, generated from the fields of :class:`conf.Settings`
(``make settings-doc``; a unit test keeps the page equal to it)."""

from __future__ import annotations

from pathlib import Path

from .conf import _TYPES, FIELDS, SETTING_NAMES, describe_type

BEGIN = "<!-- BEGIN generated from event_tasks/conf.py (make settings-doc); edit the fields' docs, not this -->"
END = "<!-- END generated -->"


def settings_reference() -> str:
    """The table of every setting in ``docs/settings.md``, between the markers :data:`BEGIN` and :data:`END`."""
    lines = [BEGIN, "", "| setting | type | default | read by | what it does |", "|---|---|---|---|---|"]
    for name, f in FIELDS.items():
        cells = [
            f"`{SETTING_NAMES[name]}`",
            describe_type(_TYPES[name]),
            f"`{f.default!r}`",
            f.metadata["read_by"],
            f.metadata["doc"],
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join([*lines, "", END])


def write_reference(path: str | Path) -> bool:
    """Put :func:`settings_reference` between the markers of ``path`` (the rest is hand-written); True if it changed."""
    file = Path(path)
    text = file.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    new = text[:start] + settings_reference() + text[end:]
    if new != text:
        file.write_text(new)
    return new != text
