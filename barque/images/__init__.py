"""Images: records and names in the metadata database, content in the content store, layers in snapshots."""
