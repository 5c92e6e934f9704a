"""Image sources: the local firmware store and the Distributed Compliance Ledger (DCL)."""
