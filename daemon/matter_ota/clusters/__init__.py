"""Server clusters of the provider's root endpoint (Descriptor, Basic Information, Access
Control, OTA Software Update Provider) and :func:`~.root.build_root_node`."""
