"""Sharing images: a client for any distribution-spec registry, and a registry server of barque's own."""
