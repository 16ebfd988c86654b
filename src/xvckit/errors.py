"""The root of every error a user can cause: the CLI prints it in one line and exits 2."""


class UserError(Exception):
    pass


class NotFound(UserError):
    """What a reference names does not exist (the admin API answers 404)."""


class Conflict(UserError):
    """The change would clash with what exists, e.g. a name taken (409)."""


class NotAllowed(UserError):
    """The caller may not make this change (403)."""
