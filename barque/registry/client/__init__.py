"""The registry client: pull and push against any OCI distribution-spec / Docker registry."""
