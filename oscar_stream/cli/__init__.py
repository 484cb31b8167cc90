"""The ``oscar-stream`` command line."""
