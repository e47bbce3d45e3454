"""Cursor tasks and their scores: Webgrid (bits per second), center-out, ISO 9241-9 throughput, the keyboard.

The keyboard (:mod:`~neurolace.tasks.keyboard`) types with the decoded cursor and click, with word
suggestions from a shipped language model (:mod:`~neurolace.tasks.language`, word frequencies from
the ``keyboard`` extra, loaded only when a model is built).

>>> from neurolace.tasks import webgrid_bps
>>> round(webgrid_bps(72, grid_side=30), 2)
11.77
"""

from neurolace.tasks.base import BlockSummary, PointAndClickTask, Selection, Target, Trial
from neurolace.tasks.center_out import CenterOutTask
from neurolace.tasks.keyboard import (
    LAYOUTS,
    Key,
    KeyboardLayout,
    KeyboardTask,
    KeySelection,
    PhraseRecord,
    TypingSummary,
    levenshtein,
)
from neurolace.tasks.language import LanguageModel, MissingDependencyError
from neurolace.tasks.metrics import (
    ThroughputCondition,
    ThroughputResult,
    iso_throughput,
    net_targets_per_minute,
    path_efficiency,
    webgrid_bps,
)
from neurolace.tasks.phrases import PHRASE_SPLITS, check_phrases, load_phrases
from neurolace.tasks.webgrid import WebgridTask

__all__ = [
    "LAYOUTS",
    "PHRASE_SPLITS",
    "BlockSummary",
    "CenterOutTask",
    "Key",
    "KeySelection",
    "KeyboardLayout",
    "KeyboardTask",
    "LanguageModel",
    "MissingDependencyError",
    "PhraseRecord",
    "TypingSummary",
    "PointAndClickTask",
    "Selection",
    "Target",
    "ThroughputCondition",
    "ThroughputResult",
    "Trial",
    "WebgridTask",
    "check_phrases",
    "iso_throughput",
    "levenshtein",
    "load_phrases",
    "net_targets_per_minute",
    "path_efficiency",
    "webgrid_bps",
]
