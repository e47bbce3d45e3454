"""The LabStreamingLayer inlet against a real pylsl outlet (liblsl ships in the pylsl wheel)."""

from __future__ import annotations

import time

import numpy as np

from neurolace.runtime.bus import InProcessBus
from neurolace.runtime.graph import Graph
from neurolace.runtime.session_file import parse_session


def test_lsl_inlet_receives_the_outlet_samples_exactly():
    import pylsl

    name = f"neurolace-test-{time.monotonic_ns()}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 5, 1000.0, pylsl.cf_int16, name))
    text = f'[nodes.amp]\ntype = "lsl_inlet"\nstream_name = "{name}"\nresolve_timeout_s = 5.0\n'
    bus = InProcessBus()
    tap = bus.subscribe("amp.raw", maxlen=10_000)
    graph = Graph(parse_session(text, source="lsl.toml"), bus)
    graph.start()
    samples = np.arange(151 * 5, dtype=np.int16).reshape(151, 5) - 300  # odd length, negative values too
    try:
        for start in range(0, 151, 50):
            outlet.push_chunk(samples[start : start + 50].tolist())
        received = []
        deadline = time.monotonic() + 10.0
        while sum(len(m.payload) for m in received) < 151 and time.monotonic() < deadline:
            message = tap.get(timeout_s=0.1)
            if message is not None:
                received.append(message)
    finally:
        graph.stop()
    data = np.concatenate([m.payload for m in received])
    np.testing.assert_array_equal(data, samples)
    assert data.dtype == np.int16
    assert [m.sample_index for m in received] == list(
        np.cumsum([0] + [len(m.payload) for m in received[:-1]])
    )
    assert graph.report()["nodes"]["amp"]["samples"] == 151
