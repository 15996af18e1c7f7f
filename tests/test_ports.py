# amaranth: UnusedElaboratable=no
"""Port names across the Verilog boundary, and one-line errors of the command-line tools."""

import subprocess
import sys

import pytest

from rtl.config import preset
from rtl.systolic.matrix_unit import MatrixUnit
from sim.ports import PortNameError, port_name, port_names


@pytest.fixture(scope="module")
def signature():
    return MatrixUnit(preset("tiny")).signature


def test_port_names_follow_signature_paths(signature):
    names = port_names(signature)
    assert "acts__payload" in names and "read_data__ready" in names and "busy" in names
    assert port_name(signature, "cmd", "valid") == "cmd__valid"


def test_wrong_port_name_names_the_problem(signature):
    with pytest.raises(PortNameError) as error:
        port_name(signature, "acts", "paylod", top="matrix_unit")
    message = str(error.value)
    assert message == ("matrix_unit has no port 'acts__paylod'; "
                       "did you mean acts__payload, acts__valid, cmd__payload?")
    assert "\n" not in message


def test_unrelated_port_name_lists_the_ports(signature):
    with pytest.raises(PortNameError, match=r"^matrix_unit has no port 'zzz'; ports: cmd__"):
        port_name(signature, "zzz", top="matrix_unit")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("args", [
    ("sim.runner", "matrix_unit", "--preset", "huge"),
    ("sim.runner", "no_such_bench"),
    ("sim.runner", "matrix_unit", "--sim", "modelsim"),
    ("sim.verilog", "--top", "cpu"),
    ("sim.bench", "--preset", "huge"),
    ("sim.demo", "--seed", "x"),
])
def test_cli_rejects_bad_arguments_in_one_line(args):
    result = _cli(*args)
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
