"""Vault throughput against the N1 raw rate, and the recorder's cost with the vault on and off.

1. Write and read MB/s of one vault stream in 1 MiB chunks on one core (one thread),
   with and without an ``fsync`` per chunk, against the N1 lossless raw rate
   (1024 channels x 19531 Hz x 10 bit = 200 Mbit/s = 25 MB/s; the aim is 10x it).
2. The recorder's wall time for the same message stream (20 ms raw blocks of 1024
   channels plus a feature bin each, fsync on, as a session records) into a plain record
   file and into the vault, median of repeats, and their ratio.

``python -m benchmarks vault [--quick]``; writes bench-results/vault.json.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import table

N1_CHANNELS = 1024
N1_FS_HZ = 19531.0
N1_ADC_BITS = 10
N1_RAW_MB_S = N1_CHANNELS * N1_FS_HZ * N1_ADC_BITS / 8 / 1e6
CHUNK_BYTES = 1 << 20
PASSPHRASE = "benchmark passphrase"


def _site(root: Path):
    from neurolace.privacy.vault import Vault

    vault = Vault.create(root / "site", PASSPHRASE)  # the default scrypt cost, as a site uses
    vault.add_participant("P1")
    return vault


def _throughput(vault, n_chunks: int, repeats: int, *, fsync: bool) -> dict:
    payload = np.random.default_rng(0).bytes(CHUNK_BYTES)
    write_s, read_s = [], []
    for repeat in range(repeats):
        name = f"t{int(fsync)}-{repeat}.bin"
        start = time.perf_counter()
        with vault.writer("P1", name, kind="bench", fsync=fsync) as writer:
            for _ in range(n_chunks):
                writer.write_chunk(payload)
        write_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        with vault.reader("P1", name) as reader:
            read_bytes = sum(len(chunk) for chunk in reader)
        read_s.append(time.perf_counter() - start)
        assert read_bytes == n_chunks * CHUNK_BYTES
        vault.path("P1", name).unlink()
    megabytes = n_chunks * CHUNK_BYTES / 1e6
    return {
        "fsync": fsync,
        "chunks": n_chunks,
        "chunk_bytes": CHUNK_BYTES,
        "write_mb_s": megabytes / statistics.median(write_s),
        "read_mb_s": megabytes / statistics.median(read_s),
        "write_s": write_s,
        "read_s": read_s,
    }


def _messages(n_bins: int):
    from neurolace.runtime.messages import Message

    rng = np.random.default_rng(1)
    samples_per_bin = int(round(N1_FS_HZ * 0.020))
    raw = rng.integers(-512, 512, size=(samples_per_bin, N1_CHANNELS), dtype=np.int16)
    features = rng.random(2 * N1_CHANNELS).astype(np.float32)
    messages = []
    for index in range(n_bins):
        messages.append(Message("implant.raw", raw, sequence=index, sample_index=index * samples_per_bin,
                                timestamp_ns=index))
        messages.append(Message("chain.features", features, sequence=index, sample_index=index * samples_per_bin,
                                timestamp_ns=index))
    return messages


def _record_time(target, messages) -> float:
    from neurolace.runtime.recorder import RecordWriter

    start = time.perf_counter()
    writer = RecordWriter(target, header={"session": "bench"}, block_ms=1e9, block_bytes=4 << 20, fsync=True)
    for message in messages:
        writer.append(message)
    writer.close()
    return time.perf_counter() - start


def _recorder_overhead(vault, root: Path, n_bins: int, repeats: int) -> dict:
    messages = _messages(n_bins)
    plain_s, vault_s = [], []
    for repeat in range(repeats):  # interleaved, so both see the same machine state
        path = root / f"plain-{repeat}.nlrec"
        plain_s.append(_record_time(path, messages))
        path.unlink()
        name = f"rec-{repeat}.nlrec"
        vault_s.append(_record_time(vault.ref("P1", name), messages))
        vault.path("P1", name).unlink()
    payload_mb = sum(m.payload.nbytes for m in messages) / 1e6
    plain, vaulted = statistics.median(plain_s), statistics.median(vault_s)
    return {
        "bins": n_bins,
        "recorded_s_of_data": n_bins * 0.020,
        "payload_mb": payload_mb,
        "plain_s": plain_s,
        "vault_s": vault_s,
        "plain_median_s": plain,
        "vault_median_s": vaulted,
        "plain_mb_s": payload_mb / plain,
        "vault_mb_s": payload_mb / vaulted,
        "ratio_vault_over_plain": vaulted / plain,
    }


def run(quick: bool = False) -> dict:
    n_chunks, repeats, n_bins = (32, 3, 100) if quick else (256, 5, 500)
    root = Path(tempfile.mkdtemp(prefix="neurolace-bench-vault-"))
    try:
        vault = _site(root)
        throughput = [_throughput(vault, n_chunks, repeats, fsync=fsync) for fsync in (False, True)]
        overhead = _recorder_overhead(vault, root, n_bins, repeats)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = [
        [f"vault stream, fsync {'every chunk' if t['fsync'] else 'off'}", t["write_mb_s"], t["read_mb_s"],
         t["write_mb_s"] / N1_RAW_MB_S, t["read_mb_s"] / N1_RAW_MB_S]
        for t in throughput
    ]
    table(
        f"vault, 1 MiB chunks x {n_chunks}, one thread (N1 raw = {N1_CHANNELS} ch x {N1_FS_HZ:g} Hz x "
        f"{N1_ADC_BITS} bit = {N1_RAW_MB_S:.1f} MB/s; aim >= 10x)",
        ["stream", "write MB/s", "read MB/s", "write / N1 raw", "read / N1 raw"],
        rows,
    )
    table(
        f"recorder, {n_bins} bins of 20 ms (raw {N1_CHANNELS} ch + features), fsync per block, "
        f"median of {repeats}",
        ["target", "wall s", "MB/s", "x real time"],
        [
            ["plain record file", overhead["plain_median_s"], overhead["plain_mb_s"],
             overhead["recorded_s_of_data"] / overhead["plain_median_s"]],
            ["vault stream", overhead["vault_median_s"], overhead["vault_mb_s"],
             overhead["recorded_s_of_data"] / overhead["vault_median_s"]],
            ["vault / plain", overhead["ratio_vault_over_plain"], "", ""],
        ],
    )
    return {
        "n1_raw_mb_s": N1_RAW_MB_S,
        "throughput": throughput,
        "recorder": overhead,
        "quick": quick,
        "temp_dir": tempfile.gettempdir(),
    }
