"""``make demo``: the whole platform on this machine, every use case flowing (see demo/runner.py)."""

import sys

from demo.runner import main

sys.exit(main())
