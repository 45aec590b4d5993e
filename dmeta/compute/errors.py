"""The error raised when a Dask cluster cannot be started or reached."""


class ClusterError(RuntimeError):
    """The requested cluster could not be started or reached.

    The message is one readable paragraph (what failed and what to check) that the
    command line prints as is.
    """
