"""Bandwidth budget: known rates for the N1 configuration, the CLI table and JSON."""

from __future__ import annotations

import json

import pytest

from neurolace.cli.main import main
from neurolace.codec.budget import BLE_2M_KBPS, bandwidth_budget
from neurolace.core.errors import InvalidInputError


def test_n1_rates_are_the_arithmetic():
    rows = {row.product: row for row in bandwidth_budget(compression_ratio=4.0)}
    assert rows["raw (packed ADC codes)"].rate_kbps == pytest.approx(
        1024 * 19531 * 10 / 1000
    )  # 199,997 kbit/s
    assert rows["raw as int16"].rate_kbps == pytest.approx(1024 * 19531 * 16 / 1000)
    assert rows["lossless compressed raw"].rate_kbps == pytest.approx(1024 * 19531 * 16 / 1000 / 4.0)
    # 20 events/s/ch, 10 bits of channel index (1024) + 9 bits of time within a 20 ms bin (391 samples)
    assert rows["spike events"].rate_kbps == pytest.approx(1024 * 20 * 19 / 1000)
    # 12 bits per channel per 20 ms bin
    assert rows["binned features"].rate_kbps == pytest.approx(1024 * 12 * 50 / 1000)
    assert not rows["lossless compressed raw"].fits and rows["binned features"].fits
    assert rows["raw as int16"].fraction_of_link == pytest.approx(
        rows["raw as int16"].rate_kbps / BLE_2M_KBPS
    )


def test_bad_parameters_are_named():
    with pytest.raises(InvalidInputError, match="compression_ratio must be a positive"):
        bandwidth_budget(compression_ratio=0)
    with pytest.raises(InvalidInputError, match="n_channels must be >= 1"):
        bandwidth_budget(compression_ratio=3.0, n_channels=0)


def test_cli_json_and_table(capsys):
    assert main(["link", "budget", "--ratio", "3.5", "--link-kbps", "700", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["link_kbps"] == 700
    assert [row["product"] for row in report["rows"]][2] == "lossless compressed raw"
    assert main(["link", "budget"]) == 0
    assert "spike events" in capsys.readouterr().out
    assert main(["link", "budget", "--ratio", "-1"]) == 2
    assert "argument --ratio: must be a finite number > 0" in capsys.readouterr().err


def test_default_ratio_is_the_codecs_measured_n1_ratio(capsys):
    from neurolace.codec.budget import MEASURED_N1_RATIO

    assert main(["link", "budget", "--json"]) == 0
    rows = {row["product"]: row for row in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["lossless compressed raw"]["rate_kbps"] == pytest.approx(
        1024 * 19531 * 16 / 1000 / MEASURED_N1_RATIO
    )
    assert f"measured ratio {MEASURED_N1_RATIO:.4f}" in rows["lossless compressed raw"]["assumption"]
