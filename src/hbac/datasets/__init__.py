"""Dataset adapters: each reads one dataset's raw layout into the common sample table."""
