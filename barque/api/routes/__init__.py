"""The HTTP side of the API, one module per resource; each lists its `ROUTES`."""
