"""The root of every error a user can cause: the CLI prints it in one line and exits 2."""


class UserError(Exception):
    pass
