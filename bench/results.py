"""Collecting figures (median of the runs, min–max) and writing RESULTS.md and results.jsonl."""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

SYSTEMS = ("ours", "celery", "celery-django", "kombu", "openedx")
LABELS = {
    "ours": "event-tasks",
    "celery": "plain Celery",
    "kombu": "plain kombu",
    "openedx": "Open edX Redis bus",
    "celery-django": "plain Celery task, same Django project",
}


@dataclasses.dataclass
class Figure:
    section: str
    row: str
    system: str
    unit: str
    runs: list[float] = dataclasses.field(default_factory=list)
    higher_is_better: bool = True
    note: str = ""  # what this system did in this row, if not the obvious
    status: str = "ok"  # ok | not available | not measured
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def median(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None


@dataclasses.dataclass
class Row:
    section: str
    name: str
    unit: str
    higher_is_better: bool = True
    what: str = ""
    figures: dict[str, Figure] = dataclasses.field(default_factory=dict)


class Results:
    def __init__(self, command: str, reproduce: dict[str, str]) -> None:
        self.command = command
        self.reproduce = reproduce  # section -> command that runs that section alone
        self.rows: dict[tuple[str, str], Row] = {}
        self.sections: dict[str, str] = {}  # section -> description
        self.section_order: list[str] = []
        self.notes: dict[str, list[str]] = {}
        self.started = time.time()

    def section(self, name: str, description: str) -> None:
        if name not in self.sections:
            self.section_order.append(name)
        self.sections[name] = description

    def note(self, section: str, text: str) -> None:
        self.notes.setdefault(section, []).append(text)

    def row(self, section: str, name: str, unit: str, higher_is_better: bool = True, what: str = "") -> Row:
        key = (section, name)
        if key not in self.rows:
            self.rows[key] = Row(section, name, unit, higher_is_better, what)
        return self.rows[key]

    def add(
        self,
        section: str,
        row: str,
        system: str,
        value: float,
        unit: str,
        *,
        higher_is_better: bool = True,
        note: str = "",
        **params: Any,
    ) -> Figure:
        r = self.row(section, row, unit, higher_is_better)
        fig = r.figures.get(system)
        if fig is None:
            fig = r.figures[system] = Figure(section, row, system, unit, higher_is_better=higher_is_better, note=note)
        fig.runs.append(value)
        if note:
            fig.note = note
        for k, v in params.items():
            fig.params.setdefault(k, []).append(v)
        print(f"  [{section}] {row} | {LABELS.get(system, system)}: {fmt(value, unit)} {unit}", flush=True)
        return fig

    def unavailable(
        self, section: str, row: str, system: str, reason: str, unit: str = "", status: str = "not available"
    ) -> None:
        r = self.row(section, row, unit)
        r.figures[system] = Figure(section, row, system, unit, status=status, note=reason)
        print(f"  [{section}] {row} | {LABELS.get(system, system)}: {status} ({reason})", flush=True)

    # -- output -------------------------------------------------------------------------------
    def jsonl(self, path: Path, meta: dict[str, Any]) -> None:
        with open(path, "w") as fh:
            for r in self.rows.values():
                for system, f in r.figures.items():
                    fh.write(
                        json.dumps(
                            {
                                "run_started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                                "command": self.command,
                                "section_command": self.reproduce.get(r.section, self.command),
                                "section": r.section,
                                "row": r.name,
                                "system": system,
                                "label": LABELS.get(system, system),
                                "unit": f.unit or r.unit,
                                "higher_is_better": r.higher_is_better,
                                "status": f.status,
                                "runs": f.runs,
                                "median": f.median,
                                "min": min(f.runs) if f.runs else None,
                                "max": max(f.runs) if f.runs else None,
                                "note": f.note,
                                "params": f.params,
                                "machine": meta.get("machine"),
                                "versions": meta.get("versions"),
                            }
                        )
                        + "\n"
                    )

    def markdown(self, meta: dict[str, Any], wall: float) -> str:
        out = ["# event-tasks benchmark results", ""]
        out.append(
            f"Made by `{self.command}`{' (what `make bench` runs)' if self.command.endswith('-m bench') else ''}, started "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(self.started))}, wall time {wall:.0f} s. "
            "Raw figures (every run) are in `bench/results.jsonl`; what each row measures is in `bench/README.md`."
        )
        out.append("")
        out.append(
            "Every cell is the **median of the runs (min–max)**; the number of runs is given per section. "
            "Ratio columns are *ours ÷ theirs* of the medians: above 1 means event-tasks is faster for "
            "rates (events/s) and slower or bigger for latencies and memory. All systems ran in the same "
            "invocation, interleaved round by round, on the same private brokers."
        )
        out.append("")
        out.append("## Machine and versions")
        out.append("")
        for k, v in meta.get("machine", {}).items():
            out.append(f"- {k}: {v}")
        out.append("- versions: " + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()))
        out.append("")
        for section in self.section_order:
            if not any(r.section == section for r in self.rows.values()):
                continue
            out.append(f"## {section}")
            out.append("")
            out.append(self.sections[section])
            out.append("")
            cmd = self.reproduce.get(section)
            if cmd:
                out.append(f"Command: `{self.command}` (this section alone: `{cmd}`)")
                out.append("")
            rows = [r for r in self.rows.values() if r.section == section]
            if all(f.status != "ok" for r in rows for f in r.figures.values()):
                out.append("| row | system | why |")
                out.append("|---|---|---|")
                for r in rows:
                    for s, f in r.figures.items():
                        out.append(f"| {r.name} | {LABELS.get(s, s)} | {f.status}: {f.note} |")
                out.append("")
                continue
            systems = [s for s in SYSTEMS if any(s in r.figures for r in rows)]
            systems += sorted({s for r in rows for s in r.figures if s not in SYSTEMS})
            header = ["row", "unit"] + [LABELS.get(s, s) for s in systems]
            header += [f"ours ÷ {LABELS.get(s, s)}" for s in systems if s != "ours"]
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "---|" * len(header))
            footnotes: list[str] = []
            for r in rows:
                cells = [r.name, r.unit]
                for s in systems:
                    f = r.figures.get(s)
                    cells.append(self._cell(f, footnotes))
                ours = r.figures.get("ours")
                for s in systems:
                    if s == "ours":
                        continue
                    theirs = r.figures.get(s)
                    if ours is None or theirs is None or not ours.median or not theirs.median:
                        cells.append("–")
                    else:
                        cells.append(f"{ours.median / theirs.median:.2f}")
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
            for i, text in enumerate(footnotes, 1):
                out.append(f"{i}. {text}")
            if footnotes:
                out.append("")
            for text in self.notes.get(section, []):
                out.append(f"- {text}")
            if self.notes.get(section):
                out.append("")
        return "\n".join(out) + "\n"

    @staticmethod
    def _cell(f: Figure | None, footnotes: list[str]) -> str:
        if f is None:
            return "–"
        mark = ""
        if f.note:
            text = f"{LABELS.get(f.system, f.system)}: {f.note}"
            if text not in footnotes:
                footnotes.append(text)
            mark = f" [{footnotes.index(text) + 1}]"
        if f.status != "ok" or not f.runs:
            return f"{f.status}{mark}"
        med, lo, hi = statistics.median(f.runs), min(f.runs), max(f.runs)
        return f"{fmt(med, f.unit)} ({fmt(lo, f.unit)}–{fmt(hi, f.unit)}){mark}"


def fmt(value: float, unit: str = "") -> str:
    if unit in ("ms",):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if unit == "MiB":
        return f"{value:,.1f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"
