"""User-facing errors of the nasvit tools; the CLI prints them as one line and exits non-zero."""

from __future__ import annotations

from evolve.errors import SearchError
from search_space.errors import SpaceError


class NasvitError(Exception):
    """A problem with the user's input (config, file, checkpoint, data) that names the value and the fix.

    Attributes:
        problems: one line per problem when the error lists several (a config's checks), else None.
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems


def raise_problems(problems: list[str], prefix: str = "") -> None:
    """Raise one :class:`NasvitError` listing ``problems`` (``prefix`` starts its message), if there are any.

    Every config dataclass checks itself this way in ``__post_init__``; the config loader then reports each
    problem under the key path of the section (:func:`nasvit.config.loading.build`).
    """
    if problems:
        raise NasvitError(prefix + "; ".join(problems), problems)


USER_ERRORS = (NasvitError, SpaceError, SearchError)
