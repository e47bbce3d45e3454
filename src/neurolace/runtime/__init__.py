"""Orchestration: the closed-loop session that wires participant, decoder and task together."""

from neurolace.runtime.closed_loop import (
    DECODERS,
    BlockRecord,
    BlockResult,
    SessionResult,
    fit_click_decoder,
    make_decoder,
    refit_decoder,
    run_block,
    run_calibration_session,
    run_refit_comparison,
)

__all__ = [
    "DECODERS",
    "BlockRecord",
    "BlockResult",
    "SessionResult",
    "fit_click_decoder",
    "make_decoder",
    "refit_decoder",
    "run_block",
    "run_calibration_session",
    "run_refit_comparison",
]
