"""The DMA engine (an AXI4 master with independent read and write engines) and the
scratchpad it fills and drains."""
