"""The core: instruction fetch, decode, issue and the control registers."""
