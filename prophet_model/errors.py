"""The one exception type for user mistakes: printed as a message, never as a traceback."""


class UserError(Exception):
    """A mistake in the user's input (config, catalog, command line). Exit code 2."""
