"""Orchestration: the real-time node graph, its buses and recorder, and the closed-loop calibration session.

- ``Graph`` / ``run_session`` run a session file (TOML) of supervised nodes over a bus
  (``InProcessBus`` by default, Redis Streams through ``open_bus("redis://...")``), reporting
  each hop's latency and backlog; ``clock = "stepped"`` makes a seeded session repeat exactly;
- ``RecordWriter`` / ``recover_record`` / ``record_to_nwb`` keep every stream crash-safe;
- ``ClosedLoop`` is the one control step (decoder -> click policy -> cursor -> task) every loop runs;
- ``run_calibration_session`` runs the automated observation, closed-loop, ReFIT and Webgrid blocks
  on the simulated participant, as fast as the CPU allows.
"""

from neurolace.runtime.bus import InProcessBus, open_bus
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
from neurolace.runtime.conformance import check_node
from neurolace.runtime.graph import Graph, RunLog, run_session
from neurolace.runtime.loop import ClosedLoop, CountsSource, DecoderError, LoopSettings
from neurolace.runtime.messages import Message, now_ns
from neurolace.runtime.node import Node, NodeState, Parameter, Port
from neurolace.runtime.presets import preset_session
from neurolace.runtime.recorder import RecordWriter, read_record, record_to_nwb, recover_record
from neurolace.runtime.session_file import SessionError, load_session, parse_session

__all__ = [
    "DECODERS",
    "BlockRecord",
    "BlockResult",
    "ClosedLoop",
    "CountsSource",
    "DecoderError",
    "Graph",
    "InProcessBus",
    "LoopSettings",
    "Message",
    "Node",
    "NodeState",
    "Parameter",
    "Port",
    "RecordWriter",
    "RunLog",
    "SessionError",
    "SessionResult",
    "check_node",
    "fit_click_decoder",
    "load_session",
    "make_decoder",
    "now_ns",
    "open_bus",
    "parse_session",
    "preset_session",
    "read_record",
    "record_to_nwb",
    "recover_record",
    "refit_decoder",
    "run_block",
    "run_calibration_session",
    "run_refit_comparison",
    "run_session",
]
