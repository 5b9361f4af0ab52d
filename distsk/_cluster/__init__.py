"""The cluster: finding the client (``client``) and data on it (``data``: dask
collections computed in order, gathered by blocks, or assembled on the workers)."""
