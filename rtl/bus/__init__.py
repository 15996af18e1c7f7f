"""Stream plumbing shared by Jalapeño blocks, and the simulation helpers that drive it."""
