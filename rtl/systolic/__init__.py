"""The weight-stationary systolic matrix unit: PEs, array, accumulator memory and sequencer."""
