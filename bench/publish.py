"""Publish rows only (kept for the README's ``python bench/publish.py``): the same code as
``python -m bench --only=publish``. ``--events`` is the events per run of the 3-services row
(the other rows scale with it); ``--rounds`` the runs per figure.

    python bench/publish.py [--events 1000] [--rounds 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.run import main
from bench.sections.publish import PUBLISH_EVENTS

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=PUBLISH_EVENTS[3])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    argv = ["--only=publish", f"--rounds={args.rounds}", f"--scale={args.events / PUBLISH_EVENTS[3]:g}"]
    main(argv + ([f"--out={args.out}"] if args.out else []))
