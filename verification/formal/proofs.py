"""Every proof ``make formal`` runs, by name."""

from functools import partial

from rtl.bus.axi import AXI4Signature

from .dma import dma_harness, engine_harness, splitter_harness, write_bursts_harness
from .flow import Proof
from .skid import skid_harness

__all__ = ["AW", "PROOFS"]

#: The ``aw`` channel of an AXI4 bus as the DMA has it (32-bit addresses, 64-bit data).
AW = AXI4Signature(addr_width=32, data_width=64, id_width=4).members["aw"].signature

#: The proofs, in the order they run.
PROOFS = {proof.name: proof for proof in [
    Proof("skid_aw", partial(skid_harness, AW), mode="prove", depth=3,
          description="SkidBuffer on AXI4 aw: o keeps the handshake rule, no beat lost, "
                      "repeated or reordered"),
    Proof("skid_aw_cover", partial(skid_harness, AW), mode="cover", depth=8,
          description="SkidBuffer on AXI4 aw: two beats in flight; the tracked beat delivered"),
    Proof("dma_read", partial(engine_harness, "read"), mode="prove", depth=2,
          description="ReadEngine: ar keeps the handshake rule; every AR INCR, full size, "
                      "aligned, inside a 4 KiB page and the window; each burst counted done "
                      "at exactly its len + 1-th R beat"),
    Proof("dma_write", partial(engine_harness, "write"), mode="prove", depth=2,
          description="WriteEngine: aw and w keep the handshake rule; every AW as for AR; "
                      "len + 1 words asked per burst, last on the final one, kept to the bus"),
    Proof("dma_write_bursts", write_bursts_harness, mode="bmc", depth=10,
          description="WriteEngine, ports only: every W burst has its AW's len + 1 beats, "
                      "last on the final one (bounded)"),
    Proof("dma_top", dma_harness, mode="prove", depth=2,
          description="Dma: bus.ar, bus.aw and bus.w keep the handshake rule; every burst "
                      "INCR, full size, aligned, inside a 4 KiB page and the window"),
    Proof("dma_window_free", partial(dma_harness, window="free"), mode="prove", depth=2,
          description="Dma, the window changing at any cycle: from the third burst after a "
                      "change on, every AR and AW is inside the current window"),
    Proof("dma_splitter", splitter_harness, mode="prove", depth=2,
          description="BurstSplitter against the reference: bursts contiguous, each inside "
                      "its row and 4 KiB page, maximal, last on the final beat"),
    Proof("dma_read_cover", partial(engine_harness, "read", covers=True), mode="cover",
          depth=16, description="ReadEngine: a 4 KiB split, a multi-beat burst counted, the "
                                "per-burst window check firing, a descriptor completed"),
    Proof("dma_write_cover", partial(engine_harness, "write", covers=True), mode="cover",
          depth=16, description="WriteEngine: a 4 KiB split, a multi-beat W burst, the "
                                "per-burst window check firing, a descriptor completed"),
]}
