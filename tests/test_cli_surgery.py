"""``neurolace surgery plan`` and ``surgery synth``: exit codes, plan.json schema, overlay, no partial files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_helpers import error_line, run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SITE_FIELDS = {"x_um", "y_um", "order", "depth_um", "margin_um", "hit_probability"}


@pytest.fixture(scope="module")
def cortex(tmp_path_factory):
    """A 320 x 320 px synthetic cortex at 10 µm/px (3.2 mm field), written by the CLI itself."""
    from neurolace.cli.main import main

    folder = tmp_path_factory.mktemp("cortex")
    path = folder / "cortex.png"
    assert main(["surgery", "synth", str(path), "--um-per-px", "10", "--size-px", "320", "--seed", "3",
                 "--truth", str(folder / "truth.png")]) == 0
    return path


def test_synth_writes_a_grey_png_and_its_mask(cortex):
    import imageio.v3 as iio

    image, truth = iio.imread(cortex), iio.imread(cortex.parent / "truth.png")
    assert image.shape == truth.shape == (320, 320) and image.dtype == np.uint8
    fraction = (truth > 0).mean()
    assert 0.03 < fraction < 0.3
    assert image[truth > 0].mean() < image[truth == 0].mean()  # vessels are dark


def test_plan_writes_the_issue_schema_and_the_overlay(cortex, tmp_path, capsys):
    out, overlay = tmp_path / "plan.json", tmp_path / "plan.png"
    code, stdout, stderr = run_cli(["surgery", "plan", cortex, "--um-per-px", "10", "--threads", "12",
                                    "--target-um", "1600,1600,1200", "--out", out, "--overlay", overlay], capsys)
    assert code == 0, stderr
    assert "12 of 12 sites" in stdout and f"wrote {out}" in stdout
    plan = json.loads(out.read_text())
    assert plan["n_sites"] == 12 and plan["requested_sites"] == 12 and plan["reasons"] == []
    for key in ("clearance_um", "min_margin_um", "estimated_duration_s"):
        assert isinstance(plan[key], float)
    assert plan["clearance_um"] == 52.0 and plan["min_margin_um"] >= 0
    assert plan["image"] == {"width_px": 320, "height_px": 320, "um_per_px": 10.0, "path": str(cortex)}
    assert [site["order"] for site in plan["sites"]] == list(range(1, 13))
    for site in plan["sites"]:
        assert SITE_FIELDS <= set(site)
        assert np.hypot(site["x_um"] - 1600, site["y_um"] - 1600) <= 1200 + 10
    assert overlay.read_bytes()[:8] == PNG_MAGIC


def test_json_prints_the_plan_it_writes(cortex, tmp_path, capsys):
    out = tmp_path / "plan.json"
    code, stdout, _ = run_cli(["surgery", "plan", cortex, "--um-per-px", "10", "--threads", "4", "--out", out,
                               "--json", "--seed", "5"], capsys)
    assert code == 0
    assert json.loads(stdout) == json.loads(out.read_text())
    assert json.loads(stdout)["seed"] == 5


def test_a_region_too_small_gives_fewer_sites_exit_3_and_the_reason(cortex, tmp_path, capsys):
    out = tmp_path / "plan.json"
    code, _, stderr = run_cli(["surgery", "plan", cortex, "--um-per-px", "10", "--target-um", "1600,1600,400",
                               "--out", out], capsys)
    assert code == 3
    plan = json.loads(out.read_text())
    assert 0 < plan["n_sites"] < 64 and "sites fit in the target region" in plan["reasons"][0]
    assert plan["reasons"][0] in stderr


def test_a_region_with_no_clear_point_gives_an_empty_plan_exit_3(cortex, tmp_path, capsys):
    out = tmp_path / "plan.json"  # a disc in the corner: every pixel is within the clearance of the image's edge
    code, _, stderr = run_cli(["surgery", "plan", cortex, "--um-per-px", "10", "--target-um", "5,5,25",
                               "--out", out], capsys)
    assert code == 3
    plan = json.loads(out.read_text())
    assert plan["sites"] == [] and plan["min_margin_um"] is None
    assert "covered by vessels or too close to the edge" in stderr


@pytest.mark.parametrize("argv,match", [
    (["--um-per-px", "0"], "--um-per-px: must be a finite number > 0"),
    (["--um-per-px", "-3"], "--um-per-px: must be a finite number > 0"),
    (["--um-per-px", "nan"], "--um-per-px: must be a finite number > 0"),
    (["--um-per-px", "10", "--target-um", "1,2"], "--target-um: must be CX,CY,R"),
    (["--um-per-px", "10", "--target-um", "1,2,-5"], "--target-um: must be CX,CY,R"),
    (["--um-per-px", "10", "--target-um", "99999,100,200"], "outside the image"),
    (["--um-per-px", "10", "--threads", "0"], "--threads: must be an integer >= 1"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(cortex, tmp_path, capsys, argv, match):
    out, overlay = tmp_path / "plan.json", tmp_path / "plan.png"
    code, _, stderr = run_cli(["surgery", "plan", cortex, *argv, "--out", out, "--overlay", overlay], capsys)
    assert code == 2
    assert match in error_line(stderr, "surgery")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_an_image_exits_2_and_writes_nothing(tmp_path, capsys):
    fake = tmp_path / "photo.png"
    fake.write_text("this is not a picture\n")
    out = tmp_path / "plan.json"
    code, _, stderr = run_cli(["surgery", "plan", fake, "--um-per-px", "10", "--out", out], capsys)
    assert code == 2
    assert "is not an image that can be read" in error_line(stderr, "surgery")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_an_existing_plan_is_kept_without_force(cortex, tmp_path, capsys):
    out = tmp_path / "plan.json"
    out.write_text("keep me")
    code, _, stderr = run_cli(["surgery", "plan", cortex, "--um-per-px", "10", "--out", out], capsys)
    assert code == 2 and "--force" in error_line(stderr, "surgery")
    assert out.read_text() == "keep me"


def test_a_plan_that_cannot_be_written_leaves_no_overlay(cortex, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    overlay = tmp_path / "plan.png"
    code, _, stderr = run_cli(["surgery", "plan", cortex, "--um-per-px", "10", "--out", blocker / "plan.json",
                               "--overlay", overlay], capsys)
    assert code == 2 and "is not a directory" in error_line(stderr, "surgery")
    assert not overlay.exists()


def test_a_disc_partly_outside_the_image_is_clipped_with_a_note(cortex, tmp_path, capsys):
    out = tmp_path / "plan.json"
    code, _, stderr = run_cli(["surgery", "plan", cortex, "--um-per-px", "10", "--threads", "3",
                               "--target-um", "3100,1600,600", "--out", out], capsys)
    assert code == 0, stderr
    plan = json.loads(out.read_text())
    assert plan["reasons"] == [] and "clipped" in plan["notes"][0]
    assert all(site["x_um"] <= 3200 for site in plan["sites"])


def test_cli_defaults_match_the_library():
    from neurolace.cli import surgery as cli
    from neurolace.surgery import sites, vessels

    assert cli.METHODS == vessels.METHODS
    assert cli.DEFAULT_SPACING_UM == sites.DEFAULT_MIN_SPACING_UM
