"""Interaction Model (Matter Core spec ch. 8 and 10): messages, data model, ACL, server."""
