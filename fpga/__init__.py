"""FPGA prototype: synthesis reports, board tops, host bridge and board builds."""
