"""The ``jalapeno`` command: a completion on the golden backend, a program run, and every
mistake of the caller as one line on stderr with a non-zero exit status."""

import subprocess
import sys

import pytest

from jalapeno.asm import disassemble
from jalapeno.models.quantize import INT8_FILE
from rtl.config import preset
from verification.programs import gemm_program


def jalapeno(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "jalapeno.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_complete_on_golden_matches_the_reference():
    out = jalapeno("complete", "def area(r):\n    return", "--tokens", "4", "--check")
    assert out.returncode == 0, out.stderr
    assert "check     golden tokens identical to the golden backend's" in out.stdout
    assert "projected" in out.stdout and "cycles" in out.stdout


def test_run_a_program(tmp_path):
    """An assembly file with data loaded before and memory dumped after."""
    cfg = preset("default")
    words = gemm_program(cfg, 0x4000, 0x5000, 0x6000, 4, 1)
    source = tmp_path / "gemm.s"
    source.write_text(disassemble(words))
    data = tmp_path / "a.bin"
    data.write_bytes(bytes(range(1, 33)))
    out = jalapeno("run", str(source), "--load", f"{data}@0x4000", "--dump", "0x6000:16")
    assert out.returncode == 0, out.stderr
    assert "stopped   NONE at 0x0" in out.stdout and "0x6000: " in out.stdout


@pytest.mark.parametrize("args, message", [
    (["complete", "x = 1", "--backend", "fpga9"],
     "unknown backend 'fpga9'; choose one of golden, rtl"),
    (["complete", "x = 1", "--preset", "huge"],
     "unknown preset 'huge'; choose one of tiny, default, large"),
    (["complete", "x = 1", "--weights", "missing.npz"],
     "weight file missing.npz does not exist"),
    (["complete", "x\t= 1"], "character '\\t' at position 1 is not in the vocabulary"),
    (["complete", "x" * 129], "the prompt is 129 characters, longer than the context of 128"),
    (["complete", "x = 1", "--tokens", "200"],
     "200 new tokens after a prompt of 5 do not fit the context of 128"),
    (["run", "nothing.s"], "program file nothing.s does not exist"),
])
def test_bad_input_is_one_line(args, message, tmp_path):
    out = jalapeno(*args, cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    assert out.stderr.splitlines()[-1:] == [f"jalapeno: error: {message}"], out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_corrupt_weight_file(tmp_path):
    for name, content in (("truncated.npz", INT8_FILE.read_bytes()[:1000]),
                          ("text.npz", b"not a weight file")):
        (tmp_path / name).write_bytes(content)
        out = jalapeno("complete", "x = 1", "--weights", name, cwd=tmp_path)
        assert out.returncode == 2
        line, = out.stderr.strip().splitlines()
        assert line.startswith(f"jalapeno: error: weight file {name} is corrupt: "), line
