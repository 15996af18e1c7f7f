"""Host software of Jalapeño: ISA, compiler, runtime and models (grows with the core)."""
