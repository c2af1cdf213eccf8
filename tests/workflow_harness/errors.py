"""The harness's one exception."""


class HarnessError(Exception):
    """The workflow uses something the harness does not model, or is malformed."""
