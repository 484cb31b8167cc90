"""Object storage I/O: S3 (aiobotocore) and WebDAV (dCache doors), behind one small interface."""
