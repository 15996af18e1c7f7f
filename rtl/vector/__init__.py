"""The vector unit: elementwise int8 operations on the accumulator results."""
