# amaranth: UnusedElaboratable=no
# (test_channel_helpers inspects a component's ports without elaborating it.)

"""The formal flow: every proof of ``make formal`` passes, and broken designs fail theirs.

Each proof is a SymbiYosys run of a few seconds once the YoWASP Yosys is compiled (about 40 s
the first time on a machine, cached after); the bounded ``dma_write_bursts`` takes about 6 s.
The negative tests run the skid buffer's proof on deliberately broken buffers and a bare AXI
channel without its environment assumption, and the DMA's proofs on broken burst splitters (no
4 KiB split, no per-burst window check, bursts past 256 beats, built by monkeypatching and
subclassing, never by editing ``rtl/``) and a W skid buffer that marks every beat ``last``:
each must FAIL with a counterexample trace, so a proof cannot pass vacuously. One more shows
why property 4 of the DMA proofs assumes the window stable while a burst is offered.
"""

import re
from functools import partial

import pytest
from amaranth import Const, Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

import rtl.dma.burst
import rtl.dma.front
import rtl.dma.write_engine
from rtl.bus.skid import SkidBuffer
from rtl.dma.burst import BurstSplitter
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
from verification.formal.dma import (
    CONFIG,
    dma_harness,
    engine_harness,
    splitter_harness,
    subfragment,
    write_bursts_harness,
)
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


class NoWindowCheck(BurstSplitter):
    """Broken: the per-burst window check compares each burst with the whole address space
    instead of the window, so it never withholds one."""

    def elaborate(self, platform):
        base, limit = self.window_base, self.window_limit
        self.window_base = Const(0, len(base))
        self.window_limit = Const((1 << len(limit)) - 1, len(limit))
        try:
            return super().elaborate(platform)
        finally:
            self.window_base, self.window_limit = base, limit


class AlwaysLast(wiring.Component):
    """Broken: a W skid buffer (a real :class:`SkidBuffer` inside) whose ``o.last`` is always
    high, so every beat ends a burst."""

    def __init__(self, channel):
        self._channel = channel
        super().__init__({"i": In(channel), "o": Out(channel)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = SkidBuffer(self._channel)
        wiring.connect(m, wiring.flipped(self.i), inner.i)
        for name in self._channel.members:
            if name == "ready":
                m.d.comb += inner.o.ready.eq(self.o.ready)
            elif name != "last":
                m.d.comb += getattr(self.o, name).eq(getattr(inner.o, name))
        m.d.comb += self.o.last.eq(1)
        return m


def _w_always_last(channel):
    return AlwaysLast(channel) if "last" in channel.members else SkidBuffer(channel)


#: Broken splitters: how to make one (given pytest's monkeypatch) and the splitter proof's
#: messages one of which must fail.
SPLITTER_MUTANTS = {
    "no_4k_split": (
        lambda monkeypatch: monkeypatch.setattr(rtl.dma.burst, "BURST_BOUNDARY", 1 << 16),
        ["splitter: held burst crosses a 4 KiB boundary",
         "bursts: burst crosses a 4 KiB boundary"]),
    "no_window_check": (
        lambda monkeypatch: monkeypatch.setattr(rtl.dma.front, "BurstSplitter", NoWindowCheck),
        ["bursts: burst outside the window"]),
    "past_256_beats": (
        lambda monkeypatch: monkeypatch.setattr(rtl.dma.burst, "MAX_BURST_BEATS", 512),
        ["bursts: burst ends before the row, 256 beats or 4 KiB",
         "bursts: burst runs past the end of its row",
         "bursts: burst does not start where the previous one ended",
         # A burst of more than 256 beats does not fit AXI's len: its end is not the
         # registered one.
         "splitter: registered end differs from the held burst's"]),
}


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
    assert any(re.match(f"assertion {re.escape(repr(message))}", line)
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


@pytest.mark.parametrize("mutant", list(SPLITTER_MUTANTS))
def test_broken_splitter_fails_its_proof(mutant, monkeypatch, tmp_path):
    """Each broken splitter fails the reference proof, as registered (k-induction)."""
    make, messages = SPLITTER_MUTANTS[mutant]
    make(monkeypatch)
    dut = rtl.dma.front.BurstSplitter  # NoWindowCheck once patched; the others patch the module
    proof = Proof(f"splitter_{mutant}", partial(splitter_harness, dut=dut), "prove", 4)
    assert_fails(run_proof(proof, out_dir=tmp_path), *messages)


@pytest.mark.parametrize(("mutant", "kind", "message"), [
    ("no_4k_split", "read", "ar: burst crosses a 4 KiB boundary"),
    ("no_4k_split", "write", "aw: burst crosses a 4 KiB boundary"),
    ("no_window_check", "read", "ar: burst outside the window"),
    ("no_window_check", "write", "aw: burst outside the window"),
])
def test_engine_with_broken_splitter_fails_on_the_bus(mutant, kind, message, monkeypatch,
                                                      tmp_path):
    """An engine built with a broken splitter issues a bad burst on its AXI port: the
    counterexample is on the port's own assertion (no white-box invariant in the harness),
    from reset, within 8 cycles."""
    SPLITTER_MUTANTS[mutant][0](monkeypatch)
    proof = Proof(f"{kind}_{mutant}", partial(engine_harness, kind, white_box=False), "bmc", 8)
    assert_fails(run_proof(proof, out_dir=tmp_path), message)


def test_registered_engine_proof_fails_without_4k_split(monkeypatch, tmp_path):
    """The engine harness as registered, white box and all, fails too."""
    SPLITTER_MUTANTS["no_4k_split"][0](monkeypatch)
    proof = Proof("read_no_4k", partial(engine_harness, "read"), "prove", 6)
    assert_fails(run_proof(proof, out_dir=tmp_path), "ar: burst crosses a 4 KiB boundary",
                 "ar skid: burst crosses a 4 KiB boundary",
                 "splitter: held burst crosses a 4 KiB boundary")


@pytest.mark.parametrize("harness", [partial(engine_harness, "write"), write_bursts_harness],
                         ids=["dma_write", "dma_write_bursts"])
def test_w_last_on_every_beat_fails(harness, monkeypatch, tmp_path):
    """A W skid buffer that ends every burst after one beat fails both W proofs."""
    monkeypatch.setattr(rtl.dma.write_engine, "SkidBuffer", _w_always_last)
    proof = Proof("w_always_last", harness, "bmc", 10)
    assert_fails(run_proof(proof, out_dir=tmp_path), "w: last differs from the word asked for",
                 "w: last not on the final beat", "w: burst of other than len + 1 beats")


def test_window_must_hold_while_a_burst_is_offered(tmp_path):
    """Without the window assumption, a burst checked in the cycle it is committed to the skid
    buffer is offered a cycle later, under a window that may have changed since: the strict
    form of property 4 fails, which is why it assumes the window stable while a burst is
    offered (``dma_window_free`` proves what holds without)."""
    proof = Proof("dma_strict_window", partial(dma_harness, window="strict"), "bmc", 8)
    assert_fails(run_proof(proof, out_dir=tmp_path),
                 "bus__ar: burst outside the window", "bus__aw: burst outside the window")


def test_dma_harness_checks_its_arguments():
    with pytest.raises(ValueError, match=r"^window must be one of stable, free, strict, "
                                         r"not 'open'$"):
        engine_harness("read", window="open")
    with pytest.raises(ValueError, match=r"^window must be one of stable, free, strict, "
                                         r"not 'open'$"):
        dma_harness(window="open")
    fragment = Fragment.get(Passthrough(), None)
    with pytest.raises(LookupError, match=r"^no submodule 'front' in "):
        subfragment(fragment, "front")
    assert CONFIG.addr_width >= 13 and CONFIG.bus_bytes == 4
