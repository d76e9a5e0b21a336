"""OCI and Docker image data types: digests, media types, references, manifests. Pure data, no I/O."""
