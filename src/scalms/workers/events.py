"""Events a child prints on stdout, one JSON object a line behind a marker.

Model packages print to stdout too (banners, warnings); the marker tells our lines from theirs.
"""

from __future__ import annotations

import json
import sys
from typing import Any

MARKER = "@scalms-event "


def emit(event: str, **data: Any) -> None:
    """Print one event for the parent and flush, so progress arrives as it happens."""
    sys.stdout.write(MARKER + json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()


def parse(line: str) -> dict[str, Any] | None:
    """The event on ``line``, or None for any other output."""
    if not line.startswith(MARKER):
        return None
    try:
        event = json.loads(line[len(MARKER) :])
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None
