"""User-facing errors of the nasvit tools; the CLI prints them as one line and exits non-zero."""

from __future__ import annotations

from evolve.errors import SearchError
from search_space.errors import SpaceError


class NasvitError(Exception):
    """A problem with the user's input (config, file, checkpoint, data) that names the value and the fix."""


USER_ERRORS = (NasvitError, SpaceError, SearchError)
