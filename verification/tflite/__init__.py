"""TFLite as an external oracle: single-op models written in Python, run by TFLite itself."""
