"""Run names read from files become folder and file names: check them before they do.

A model or structure name stored in an HDF5 file (or an extended XYZ header) is whatever its
writer put there; ``../../x`` would send an export or an analysis outside its output folder.
"""

from __future__ import annotations

import re

from scalms.errors import ScalmsError

_PATH_COMPONENT = re.compile(r"^(?!\.{1,2}$)(?!\s)[^/\\\x00-\x1f\x7f]{1,200}(?<!\s)$")
"""One file or folder name: no separator, no control character, not '.' or '..', no edge spaces."""


class RunNameError(ScalmsError):
    """A run's model or structure name cannot be used as a file or folder name."""


def check_name(name: str, what: str, source: object = None) -> str:
    """Return ``name`` if it can name a folder; else raise :class:`RunNameError`.

    ``what`` is "model" or "structure". Model names follow the rule of model_config.yaml
    (letters, digits and . _ + -); structure names, which come from file names, may hold any
    character a file name may, but no path separator and neither '.' nor '..'.
    """
    from scalms.config import MODEL_NAME

    name = str(name)
    ok = MODEL_NAME.match(name) if what == "model" else _PATH_COMPONENT.match(name)
    if not ok:
        rule = (
            "letters, digits and . _ + - only"
            if what == "model"
            else "no '/' or '\\', not '.' or '..', not empty"
        )
        where = f"{source}: " if source is not None else ""
        raise RunNameError(
            f"{where}{what} name {name!r} cannot name a file or folder ({rule}); rename the run, "
            "e.g. with `scalms io concat --model NAME --structure-name NAME`"
        )
    return name
