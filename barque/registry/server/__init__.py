"""`barque registry serve`: an OCI distribution-spec 1.1 registry on barque's content store."""
