"""The keyboard state a typing block shows on the dashboard: what the live frames carry for ``typing.js``.

:func:`keyboard_keys` gives the keys once (label, kind, centre and width in
workspace units, y up, as the task's targets); :func:`typing_state` the state of
each bin: the typed text, the phrase to copy, the suggestions, the index of the
key aimed at, the cursor and the running ccpm. :meth:`LiveSession.set_typing
<neurolace.web.live.LiveSession.set_typing>` puts them in the frames
(``task == "typing"``, ``typing``; the keys in the first frame after they
change and in every session snapshot).
"""

from typing import Any

import numpy as np

from neurolace.core.errors import InvalidInputError

__all__ = ["keyboard_keys", "typing_state"]


def keyboard_keys(task: Any) -> list[dict]:
    """The keys of a :class:`~neurolace.tasks.keyboard.KeyboardTask` as JSON-ready dicts, in key-index order.

    Returns
    -------
    list of dict
        ``{"index", "label", "kind", "x", "y", "width"}``; x, y the key's centre (workspace units, y up).
        Suggestion keys carry the words they offer now.
    """
    if not hasattr(task, "keys") or not hasattr(task, "typed_text"):
        raise InvalidInputError(f"task must be a KeyboardTask, got {type(task).__name__}")
    return [{"index": int(key.index), "label": key.label, "kind": key.kind,
             "x": round(float(key.target.center_xy[0]), 5), "y": round(float(key.target.center_xy[1]), 5),
             "width": round(float(key.target.width), 5)} for key in task.keys]


def typing_state(task: Any, cursor_xy: Any, *, time_s: float) -> dict:
    """One bin's keyboard state for the live frame.

    Parameters
    ----------
    task : KeyboardTask
    cursor_xy : array-like, shape (2,)
        The typist's cursor (workspace units, y up).
    time_s : float
        Seconds since the block started (the running ccpm's denominator).

    Returns
    -------
    dict
        ``typed_text``, ``target_phrase`` (None in free typing), ``suggestions``, ``target_key``
        (index of the key aimed at, or None), ``cursor`` [x, y], ``ccpm``, ``t_s``.
    """
    if not hasattr(task, "summary") or not hasattr(task, "target_key"):
        raise InvalidInputError(f"task must be a KeyboardTask, got {type(task).__name__}")
    cursor = np.asarray(cursor_xy, dtype=np.float64).reshape(-1)
    if cursor.shape != (2,) or not np.isfinite(cursor).all():
        raise InvalidInputError(f"cursor_xy must be two finite numbers, got {cursor_xy!r:.60}")
    time_s = float(time_s)
    ccpm = float(task.summary(end_s=time_s).ccpm) if time_s > 0 and task.records else 0.0
    key = task.target_key
    return {"typed_text": task.typed_text, "target_phrase": task.target_phrase, "suggestions": task.suggestions,
            "target_key": None if key is None else int(key.index),
            "cursor": [round(float(cursor[0]), 5), round(float(cursor[1]), 5)],
            "ccpm": round(ccpm, 2) if np.isfinite(ccpm) else 0.0, "t_s": round(time_s, 3)}
