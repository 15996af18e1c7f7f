"""Where cocotb benches leave the figures ``make bench`` collects."""

import json
import os
from pathlib import Path

__all__ = ["write_report"]


def write_report(name, report):
    """Write ``report`` as JSON into the bench run's output folder (``JALAPENO_OUT``)."""
    Path(os.environ["JALAPENO_OUT"], name).write_text(json.dumps(report, indent=2))
