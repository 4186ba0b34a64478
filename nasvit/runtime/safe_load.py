"""Reading pickled PyTorch files without running their code, and saying why a file was refused in nasvit's words.

Every ``.pt`` file nasvit reads goes through ``torch.load(weights_only=True)``. When that refuses a file, torch's own
message advises loading it again with ``weights_only=False``; for a file of unknown origin that advice runs its
code. So nasvit never passes torch's text on: :func:`load_failure` says what was refused and that nasvit will not
load it, or, for a damaged file, only torch's first sentence.
"""

from __future__ import annotations

import re

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def refused_global(error: Exception) -> str | None:
    """The Python global (``module.Name``) torch's safe loader refused in ``error``; None for other failures."""
    text = str(error)
    match = _GLOBAL.search(text)
    return match.group(1) if match and "WeightsUnpickler" in text else None


def load_failure(error: Exception) -> str:
    """One clause for a failed ``torch.load(weights_only=True)``, without torch's advice to load it unsafely.

    A refused global: ``'its pickle names the Python global m.X, which nasvit does not allow (it could run code
    from the file); nasvit will not load it'``. Anything else: the error type and torch's first sentence.
    """
    name = refused_global(error)
    if name is not None:
        return (
            f"its pickle names the Python global {name}, which nasvit does not allow (loading it could run code "
            "from the file); nasvit will not load it"
        )
    first_line = (str(error).strip().splitlines() or [""])[0].split(". ")[0][:160]
    return f"{type(error).__name__}: {first_line}"
