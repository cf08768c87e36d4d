"""Serving a Glow model: SavedModel export, a TF-Serving-compatible REST server, a client."""
