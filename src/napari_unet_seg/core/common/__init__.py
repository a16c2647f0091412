"""Small helpers every layer of the core shares: callbacks and cancelling, atomic writes, error text."""
