"""Real bitstreams: integer CDF tables, range-coder backends, the container, compress/decompress."""
