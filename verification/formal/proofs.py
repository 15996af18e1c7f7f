"""Every proof ``make formal`` runs, by name."""

from functools import partial

from rtl.bus.axi import AXI4Signature

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
]}
