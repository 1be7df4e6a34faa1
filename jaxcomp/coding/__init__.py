"""Real bitstreams: range-coder backends, the container, compress/decompress (the integer CDF
tables they read are built by `jaxcomp.codec.tables`, at export)."""
