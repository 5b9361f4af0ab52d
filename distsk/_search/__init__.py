"""A search's path: the driver (input to plan and runner), the loop that runs a
search's fits on a runner (``loop``), its checkpoint and its progress bar."""
