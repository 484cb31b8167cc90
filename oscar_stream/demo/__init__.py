"""`oscar-stream demo`: a two-stage pipeline on the local stack, end to end, with its outputs checked."""
