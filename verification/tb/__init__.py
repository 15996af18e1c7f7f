"""cocotb testbenches, one module per block or system scenario, and their shared drivers."""
