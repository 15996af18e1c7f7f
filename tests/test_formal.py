# amaranth: UnusedElaboratable=no
# (test_channel_helpers inspects a component's ports without elaborating it.)

"""The formal flow: every proof of ``make formal`` passes, and broken designs fail theirs.

Each proof is a SymbiYosys run of a second or two once the YoWASP Yosys is compiled (about 40 s
the first time on a machine, cached after). The negative tests run the skid buffer's proof on
deliberately broken buffers and a bare AXI channel without its environment assumption: each
must FAIL with a counterexample trace, so a proof cannot pass vacuously.
"""

import re
from functools import partial

import pytest
from amaranth import Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.bus.skid import SkidBuffer
from verification.formal import (
    PROOFS,
    Harness,
    Proof,
    Result,
    assume_axi_stable,
    axi_stable,
    channel_name,
    component_inputs,
    format_table,
    payload,
    run_proof,
)
from verification.formal.__main__ import main
from verification.formal.proofs import AW
from verification.formal.skid import find_signals, skid_harness


class _Wrapper(wiring.Component):
    """A skid buffer's ports around a real :class:`SkidBuffer` (``inner``)."""

    def __init__(self, channel):
        self._channel = channel
        super().__init__({"i": In(channel), "o": Out(channel)})


class CombinationalPayload(_Wrapper):
    """Broken: ``valid`` and ``ready`` as the skid buffer's, ``o``'s payload straight from
    ``i``'s, so it changes while a beat waits on ``o``."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = SkidBuffer(self._channel)
        wiring.connect(m, wiring.flipped(self.i), inner.i)
        m.d.comb += [self.o.valid.eq(inner.o.valid), inner.o.ready.eq(self.o.ready)]
        m.d.comb += [o.eq(i) for o, i in zip(payload(self.o), payload(self.i), strict=True)]
        return m


class Lossy(_Wrapper):
    """Broken: ``i.ready`` always high, so a beat offered while both registers are full is
    taken and dropped."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = SkidBuffer(self._channel)
        m.d.comb += [inner.i.valid.eq(self.i.valid), self.i.ready.eq(1)]
        m.d.comb += [dst.eq(src) for dst, src in
                     zip(payload(inner.i), payload(self.i), strict=True)]
        wiring.connect(m, inner.o, wiring.flipped(self.o))
        return m


class Passthrough(wiring.Component):
    """A channel passed straight through: ``o`` is as stable as ``i``."""

    i: In(AW)
    o: Out(AW)

    def elaborate(self, platform):
        m = Module()
        wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
        return m


def passthrough_harness(*, assume):
    m = Module()
    m.submodules.dut = dut = Passthrough()
    if assume:
        assume_axi_stable(m, dut.i)
    axi_stable(m, dut.o)
    return Harness(m, component_inputs(dut))


def failed(result):
    """The failure message of a proof that should have passed."""
    return (f"{result.proof.name}: {result.status}; " + "; ".join(result.failures)
            + "".join(f"; counterexample {trace}" for trace in result.counterexamples)
            + f"; log {result.workdir / 'sby.log'}")


def assert_fails(result, *messages):
    """``result`` is a FAIL with a counterexample trace, and one of ``messages`` failed."""
    assert result.status == "FAIL", failed(result)
    assert result.counterexamples and all(trace.is_file() for trace in result.counterexamples)
    assert all(trace.suffix == ".vcd" for trace in result.counterexamples)
    assert any(re.match(f"assertion '{re.escape(message)}'", line)
               for line in result.failures for message in messages), result.failures


@pytest.mark.parametrize("name", list(PROOFS))
def test_proof_passes(name, tmp_path):
    result = run_proof(PROOFS[name], out_dir=tmp_path)
    assert result.passed, failed(result)
    assert (tmp_path / name / f"{name}.sby").is_file()
    assert (tmp_path / name / "top.il").is_file()
    if result.proof.mode == "cover":
        assert result.cover_traces and all(trace.is_file() for trace in result.cover_traces)


def test_combinational_payload_fails(tmp_path):
    proof = Proof("skid_comb", partial(skid_harness, AW, dut=CombinationalPayload),
                  mode="prove", depth=3)
    assert_fails(run_proof(proof, out_dir=tmp_path),
                 "o: payload changed before ready", "o carries another beat than its turn")


def test_lossy_fails(tmp_path):
    proof = Proof("skid_lossy", partial(skid_harness, AW, dut=Lossy), mode="prove", depth=3)
    assert_fails(run_proof(proof, out_dir=tmp_path),
                 "beats in flight differ from the occupancy", "more than two beats in flight")


def test_axi_stable_holds_given_the_environment(tmp_path):
    proof = Proof("pass_assumed", partial(passthrough_harness, assume=True), "prove", 1)
    result = run_proof(proof, out_dir=tmp_path)
    assert result.passed, failed(result)


@pytest.mark.parametrize("mode", ["bmc", "prove"])
def test_axi_stable_fails_without_the_environment(mode, tmp_path):
    proof = Proof("pass_free", partial(passthrough_harness, assume=False), mode, 3)
    assert_fails(run_proof(proof, out_dir=tmp_path),
                 "o: valid dropped before ready", "o: payload changed before ready")


def test_channel_helpers():
    dut = Passthrough()
    assert channel_name(dut.o) == "o"
    assert [value.name for value in payload(dut.i)] == [
        "i__id", "i__addr", "i__len", "i__size", "i__burst", "i__lock", "i__cache", "i__prot"]
    assert [value.name for value in component_inputs(dut)] == [
        "i__valid", *(value.name for value in payload(dut.i)), "o__ready"]


def test_find_signals_names_a_missing_signal():
    fragment = Fragment.get(Passthrough(), None)
    with pytest.raises(LookupError, match=r"^0 signals named 'space' in the design, not one$"):
        find_signals(fragment, ["space"])


def test_proof_checks_its_mode_and_depth():
    with pytest.raises(ValueError, match=r"^mode must be one of prove, bmc, cover, not 'live'$"):
        Proof("x", passthrough_harness, mode="live", depth=1)
    with pytest.raises(ValueError, match=r"^depth must be a positive integer, not 0$"):
        Proof("x", passthrough_harness, mode="bmc", depth=0)


def test_missing_sby_is_an_error(tmp_path):
    proof = Proof("no_sby", partial(passthrough_harness, assume=True), "prove", 1)
    result = run_proof(proof, out_dir=tmp_path, sby="no-such-sby")
    assert result.status == "ERROR"
    assert result.failures == ["cannot run SymbiYosys 'no-such-sby': No such file or directory"]


def test_cli_exits_non_zero_and_names_the_trace(tmp_path, capsys):
    proofs = {
        "good": Proof("good", partial(passthrough_harness, assume=True), "prove", 1),
        "bad": Proof("bad", partial(passthrough_harness, assume=False), "bmc", 3),
    }
    with pytest.raises(SystemExit) as exit_info:
        main([], proofs=proofs, out_dir=tmp_path)
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert re.search(r"^formal good  prove depth 1 \.\.\. PASS \d+\.\d s$", out, re.M)
    assert re.search(r"^good +prove +1 +PASS +\d+\.\d$", out, re.M)
    assert re.search(r"^bad +bmc +3 +FAIL +\d+\.\d$", out, re.M)
    assert f"counterexample: {tmp_path}/bad/run/engine_0/trace.vcd" in out


def test_cli_runs_the_named_proofs_only(tmp_path, capsys):
    proofs = {
        "good": Proof("good", partial(passthrough_harness, assume=True), "prove", 1),
        "bad": Proof("bad", partial(passthrough_harness, assume=False), "bmc", 3),
    }
    main(["--proof", "good"], proofs=proofs, out_dir=tmp_path)
    out = capsys.readouterr().out
    assert "bad" not in out
    assert not (tmp_path / "bad").exists()


def test_cli_list_and_unknown_proof(capsys):
    main(["--list"])
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == list(PROOFS)
    with pytest.raises(SystemExit) as exit_info:
        main(["--proof", "nonexistent"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nonexistent'" in capsys.readouterr().err


def test_format_table():
    proof = PROOFS["skid_aw"]
    table = format_table([Result(proof, "PASS", 1.25, None), Result(proof, "FAIL", 12.0, None)])
    assert table.splitlines() == [
        "proof    mode   depth  result  seconds",
        "skid_aw  prove      3  PASS        1.2",
        "skid_aw  prove      3  FAIL       12.0",
    ]
