"""Cryptographic building blocks (SPAKE2+, certificates, CASE keys)."""
