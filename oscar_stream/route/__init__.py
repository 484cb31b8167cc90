"""Which services want an event: routing tables (OSCAR FDL or oscar-stream YAML), validation, the index."""
