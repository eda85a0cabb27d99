"""Session fixtures that build the tiny offline models of SPEC §10 (owned by the model runtime)."""
