"""Insertion planning: sites, depth, order, timing, Monte-Carlo and plan.json, on hand-built vessel maps.

Every map here is made in the test (a mask and its exact distance transform), so each
assertion has a known answer: clearance and spacing checked by brute force against every vessel
pixel, crossings by an independent segment-intersection test, hit probabilities against the
Gaussian tail they must follow.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurolace.core.errors import InvalidInputError
from neurolace.surgery.depth import CorticalLayers, insertion_depths
from neurolace.surgery.montecarlo import estimate_placement
from neurolace.surgery.motion import BrainMotion, RobotTiming, schedule_insertions
from neurolace.surgery.ordering import order_insertions
from neurolace.surgery.plan import PLAN_FORMAT, plan_insertions, plan_overlay
from neurolace.surgery.sites import Clearance, coverage, planning_map, select_sites, target_region
from neurolace.surgery.vessels import VesselMap, distance_map_um


def vessel_map(mask: np.ndarray, um_per_px: float) -> VesselMap:
    mask = np.asarray(mask, dtype=bool)
    return VesselMap(mask=mask, distance_um=distance_map_um(mask, um_per_px), um_per_px=um_per_px,
                     vesselness=mask.astype(float))


def random_mask(rng: np.random.Generator, shape, n_vessels: int) -> np.ndarray:
    """Straight vessels of random position, angle and width."""
    height, width = shape
    rows, cols = np.mgrid[0:height, 0:width]
    mask = np.zeros(shape, dtype=bool)
    for _ in range(n_vessels):
        row, col = rng.uniform(0, height), rng.uniform(0, width)
        angle = rng.uniform(0, np.pi)
        half_width = rng.uniform(1.0, 4.0)
        mask |= np.abs((cols - col) * np.sin(angle) - (rows - row) * np.cos(angle)) <= half_width
    return mask


def brute_force_clearance_um(xy_um: np.ndarray, mask: np.ndarray, um_per_px: float) -> np.ndarray:
    """Distance from each site to the near edge of the nearest vessel pixel, and to the image's edge."""
    rows, cols = np.nonzero(mask)
    centres = np.column_stack([(cols + 0.5) * um_per_px, (rows + 0.5) * um_per_px])
    height, width = mask.shape
    to_edge = np.minimum.reduce([xy_um[:, 0], width * um_per_px - xy_um[:, 0], xy_um[:, 1], height * um_per_px - xy_um[:, 1]])
    if centres.size == 0:
        return to_edge
    to_vessel = np.sqrt(((xy_um[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)).min(axis=1) - 0.5 * um_per_px
    return np.minimum(to_vessel, to_edge)


def segments_intersect(p1, p2, q1, q2) -> bool:
    """Proper intersection of two segments by orientation tests (written here, not taken from the code)."""
    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    d1, d2 = cross(q1, q2, p1), cross(q1, q2, p2)
    d3, d4 = cross(p1, p2, q1), cross(p1, p2, q2)
    return ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and 0 not in (d1, d2, d3, d4)


# ---------------------------------------------------------------- sites


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n_vessels=st.integers(0, 6),
    n_sites=st.integers(1, 40),
    spacing_um=st.sampled_from([60.0, 120.0, 250.0]),
    um_per_px=st.sampled_from([5.0, 10.0]),
)
def test_every_site_keeps_clearance_and_spacing(seed, n_vessels, n_sites, spacing_um, um_per_px):
    rng = np.random.default_rng(seed)
    mask = random_mask(rng, (96, 120), n_vessels)
    selection = select_sites(vessel_map(mask, um_per_px), n_sites, min_spacing_um=spacing_um)
    assert selection.n_sites <= n_sites
    if selection.n_sites == 0:
        assert selection.reasons
        return
    true_clearance = brute_force_clearance_um(selection.xy_um, mask, um_per_px)
    assert (true_clearance >= selection.clearance_um - 1e-9).all()
    assert (selection.margin_um >= 0).all()
    assert selection.min_margin_um == pytest.approx(float((true_clearance - selection.clearance_um).min()), abs=1e-6)
    if selection.n_sites > 1:
        gaps = np.sqrt(((selection.xy_um[:, None] - selection.xy_um[None]) ** 2).sum(axis=2))
        np.fill_diagonal(gaps, np.inf)
        assert gaps.min() >= spacing_um - 1e-9
    assert (selection.n_sites == n_sites) == (not selection.reasons)


def test_default_clearance_sums_its_documented_terms():
    terms = Clearance().for_scale(10.0)
    assert terms.to_dict() == {"needle_radius_um": 12.0, "robot_error_um": 10.0, "registration_error_um": 10.0,
                               "segmentation_error_um": 10.0, "safety_margin_um": 10.0, "total_um": 52.0}
    # registration and segmentation are one pixel each when pixels exceed 10 µm
    assert Clearance().for_scale(25.0).total_um == 82.0
    assert Clearance(segmentation_error_um=0.0).for_scale(10.0).total_um == 42.0


def test_a_region_that_cannot_hold_the_sites_gives_fewer_with_the_reason():
    empty = vessel_map(np.zeros((200, 200), dtype=bool), 10.0)
    region = target_region((200, 200), 10.0, centre_um=(1000.0, 1000.0), radius_um=300.0)
    selection = select_sites(empty, 64, region=region, min_spacing_um=250.0)
    # a disc of radius 300 µm holds at most 7 points 250 µm apart (hexagonal packing: a centre and a ring of 6)
    assert 3 <= selection.n_sites <= 7
    assert len(selection.reasons) == 1
    assert f"only {selection.n_sites} of 64 sites fit in the target region at 250 µm spacing" in selection.reasons[0]


def test_a_region_covered_by_vessels_gives_an_empty_selection_with_the_reason():
    mask = np.zeros((100, 100), dtype=bool)
    mask[30:70, 30:70] = True
    region = target_region((100, 100), 10.0, centre_um=(500.0, 500.0), radius_um=150.0)
    selection = select_sites(vessel_map(mask, 10.0), 8, region=region)
    assert selection.n_sites == 0 and selection.min_margin_um is None
    assert "covered by vessels" in selection.reasons[0]


def test_sites_stay_inside_a_disc_region_and_cover_it_evenly():
    rng = np.random.default_rng(3)
    mask = random_mask(rng, (300, 300), 4)
    region = target_region((300, 300), 10.0, centre_um=(1500.0, 1500.0), radius_um=1000.0)
    selection = select_sites(vessel_map(mask, 10.0), 32, region=region)
    assert selection.n_sites == 32
    assert (np.hypot(*(selection.xy_um - 1500.0).T) <= 1000.0 + 10.0).all()
    spread = coverage(selection.xy_um, region)
    clumped = coverage(np.full((32, 2), 1500.0) + rng.normal(0, 50.0, (32, 2)), region)
    assert spread["fraction"] > 0.6 > clumped["fraction"]


@pytest.mark.parametrize("kwargs,match", [
    ({"centre_um": (-10.0, 50.0), "radius_um": 100.0}, "outside the image"),
    ({"centre_um": (50.0, 50.0), "radius_um": 0.0}, "radius_um must be a positive"),
    ({"centre_um": (50.0, 50.0)}, "needs both"),
    ({"mask": np.ones((3, 3), dtype=bool)}, "must have the image's shape"),
    ({"mask": np.zeros((20, 20), dtype=bool)}, "selects no pixel"),
])
def test_bad_regions_are_refused(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        target_region((20, 20), 10.0, **kwargs)


def test_a_disc_partly_outside_the_image_is_clipped_with_a_note():
    region = target_region((50, 50), 10.0, centre_um=(0.0, 250.0), radius_um=200.0)
    assert region.notes and "clipped" in region.notes[0]
    assert region.mask[:, 0].any() and not region.mask[:, 30:].any()


def test_the_planning_map_fills_a_hollow_wide_vessel_and_keeps_the_mask():
    mask = np.zeros((120, 120), dtype=bool)
    mask[:, 40:44] = mask[:, 56:60] = True  # two edges 120 µm apart: the filter's view of a wide vessel
    mask[:, 100:103] = True  # a separate vessel 400 µm away
    vesselness = np.zeros(mask.shape)
    vesselness[10:20, 10:12] = 0.5  # weak but above the low threshold: not in the mask
    segmented = VesselMap(mask=mask, distance_um=distance_map_um(mask, 10.0), um_per_px=10.0,
                          vesselness=vesselness, low=0.3, high=0.8)
    cautious = planning_map(segmented)
    assert (cautious.mask >= mask).all()
    assert cautious.mask[:, 44:56].all()  # the hollow centre is closed, to the image's top and bottom edges
    assert not cautious.mask[:, 62:98].any()  # the 400 µm gap to the other vessel stays open
    assert cautious.mask[10:20, 10:12].all()
    np.testing.assert_allclose(cautious.distance_um, distance_map_um(cautious.mask, 10.0))
    assert planning_map(segmented, close_gap_um=0.0, hole_radius_um=0.0, include_low=False).mask.sum() == mask.sum()


def test_the_planning_map_fills_narrow_enclosed_holes_only():
    rows, cols = np.mgrid[0:200, 0:200]
    radius_px = np.hypot(rows - 100, cols - 100)
    small = np.abs(radius_px - 12) <= 1.5  # a ring of vessel round a 100 µm island: a hollow vessel's view
    large = np.abs(np.hypot(rows - 100, cols - 100) - 60) <= 1.5  # round a 580 µm island: real tissue
    for ring, filled in ((small, True), (large, False)):
        segmented = VesselMap(mask=ring, distance_um=distance_map_um(ring, 10.0), um_per_px=10.0,
                              vesselness=ring.astype(float))
        cautious = planning_map(segmented, close_gap_um=0.0)
        assert bool(cautious.mask[100, 100]) is filled


# ---------------------------------------------------------------- depth


def test_depth_centres_the_electrodes_in_the_target_band():
    depth = insertion_depths(3)  # 3 mm cortex: band 300-2250 µm; 16 electrodes at 50 µm span 750 µm
    assert depth.n_electrodes == 16 and depth.pitch_um == 50.0 and depth.electrode_span_um == 750.0
    np.testing.assert_allclose(depth.shallowest_electrode_um, 900.0)
    np.testing.assert_allclose(depth.depth_um, 1650.0)


def test_depth_in_a_band_thinner_than_the_thread_starts_at_its_top():
    depth = insertion_depths(2, CorticalLayers(thickness_um=1000.0))  # band 100-750 µm, narrower than 750
    np.testing.assert_allclose(depth.shallowest_electrode_um, 100.0)
    np.testing.assert_allclose(depth.depth_um, 850.0)
    with pytest.raises(InvalidInputError, match="top < bottom"):
        CorticalLayers(target_top_fraction=0.8, target_bottom_fraction=0.5)


# ---------------------------------------------------------------- ordering


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threads_never_cross_and_no_needle_lands_on_a_laid_thread(seed):
    rng = np.random.default_rng(seed)
    sites = np.zeros((0, 2))
    while sites.shape[0] < 64:  # spaced 250 µm apart, as the planner places them
        point = rng.uniform(0, 4000, size=2)
        if sites.shape[0] == 0 or np.hypot(*(sites - point).T).min() >= 250.0:
            sites = np.vstack([sites, point])
    ordering = order_insertions(sites, implant_xy_um=(2000.0, 2000.0), exit_radius_um=800.0, thread_clearance_um=52.0)
    exits = ordering.exit_xy_um
    for a in range(64):
        for b in range(a + 1, 64):
            assert not segments_intersect(exits[a], sites[a], exits[b], sites[b]), (a, b)
    assert sorted(ordering.order.tolist()) == list(range(64))
    rank = ordering.rank
    for later in range(64):  # every site near thread `later` goes in before it
        start, end = exits[later], sites[later]
        for site in range(64):
            if site == later:
                continue
            t = np.clip(np.dot(sites[site] - start, end - start) / np.dot(end - start, end - start), 0, 1)
            if np.hypot(*(sites[site] - (start + t * (end - start)))) < 52.0:
                assert rank[site] < rank[later]
    assert ordering.unmet_constraints == 0
    path = np.vstack([[2000.0, 2000.0], sites[ordering.order]])
    assert ordering.travel_mm == pytest.approx(np.hypot(*np.diff(path, axis=0).T).sum() / 1000.0)


def test_cyclic_constraints_are_counted_not_hidden():
    # two sites closer than the clearance each lie on the other's thread: no order meets both constraints
    sites = np.array([[0.0, 0.0], [5.0, 0.0]])
    ordering = order_insertions(sites, exit_radius_um=300.0, thread_clearance_um=10.0)
    assert ordering.n_constraints == 2 and ordering.unmet_constraints == 1


def test_two_opt_finds_the_straight_route_along_a_line():
    sites = np.column_stack([np.array([3, 0, 4, 1, 2], dtype=float) * 300.0, np.zeros(5)])
    ordering = order_insertions(sites, implant_xy_um=(-300.0, 0.0), exit_xy_um=sites + [0.0, -500.0],
                                thread_clearance_um=0.0)
    assert sites[ordering.order, 0].tolist() == [0.0, 300.0, 600.0, 900.0, 1200.0]
    assert ordering.travel_mm == pytest.approx(1.5)


# ---------------------------------------------------------------- motion and timing


def test_every_insertion_starts_in_a_quiet_phase():
    sites = np.column_stack([np.arange(10) * 300.0, np.zeros(10)])
    motion, robot = BrainMotion.human(), RobotTiming()
    schedule = schedule_insertions(sites, np.arange(10), motion=motion, robot=robot)
    assert schedule.quiet.all()
    lags = np.linspace(0.0, robot.latency_s, 51)
    for start in schedule.start_s:  # the excursion during the latency, sampled independently of the code
        moved = np.abs(motion.displacement_um(start + lags) - motion.displacement_um(start))
        assert moved.max() <= robot.quiet_residual_um + 0.5
    # a moving surface: 100 µm at 1.2 Hz moves up to 2 pi 1.2 100 0.05 = 38 µm in 50 ms, so waiting is needed
    assert (schedule.wait_s > 0).any()
    assert schedule.duration_s == pytest.approx(schedule.start_s.max() + robot.insertion_s)


def test_without_motion_the_procedure_is_travel_plus_the_robot_rate():
    sites = np.column_stack([np.arange(64) * 250.0, np.zeros(64)])
    robot = RobotTiming()
    schedule = schedule_insertions(sites, np.arange(64), motion=BrainMotion.still(), robot=robot)
    travel_s = 63 * 250.0 / (robot.stage_speed_mm_s * 1000.0)
    assert schedule.duration_s == pytest.approx(64 * robot.insertion_s + travel_s)
    assert (schedule.wait_s == 0).all()


def test_motion_presets_follow_their_sources():
    rat = BrainMotion.rat()
    assert 2.0 <= rat.cardiac_amplitude_um <= 4.0 and 10.0 <= rat.respiratory_amplitude_um <= 30.0
    human = BrainMotion.human()
    assert 2 * (human.cardiac_amplitude_um + human.respiratory_amplitude_um) <= 800.0
    assert 1.0 <= human.cardiac_hz <= 1.5 and 0.2 <= human.respiratory_hz <= 0.3


# ---------------------------------------------------------------- Monte-Carlo


def straight_vessel_map():
    """A vertical vessel 20 µm wide, its near edge at x = 190 µm, on a 2 µm/px image."""
    mask = np.zeros((200, 200), dtype=bool)
    mask[:, 95:105] = True
    return vessel_map(mask, 2.0)


def test_hit_probability_follows_the_gaussian_tail_beside_a_straight_vessel():
    sigma = math.hypot(10.0, 10.0)  # robot and registration errors in quadrature
    # the needle (radius 12 µm) reaches the vessel (x in 190-210 µm) when it lands in 178-222 µm
    x_um = np.array([178.0, 178.0 - 2 * sigma, 178.0 + sigma, 60.0, 200.0])
    estimate = estimate_placement(straight_vessel_map(), np.column_stack([x_um, np.full(5, 200.0)]),
                                  motion=BrainMotion.still(), n_samples=20_000, seed=1)

    def normal_cdf(z):
        return 0.5 * math.erfc(-z / math.sqrt(2))

    expected = [normal_cdf((x - 178.0) / sigma) - normal_cdf((x - 222.0) / sigma) for x in x_um]
    assert expected[0] == pytest.approx(0.5, abs=1e-3) and expected[3] < 1e-12  # at the edge; far away
    np.testing.assert_allclose(estimate.hit_probability, expected, atol=0.015)
    assert estimate.error_mean_um == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.02)  # Rayleigh mean


def test_monte_carlo_is_seeded():
    sites = np.array([[178.0, 200.0]])
    first = estimate_placement(straight_vessel_map(), sites, n_samples=500, seed=7)
    again = estimate_placement(straight_vessel_map(), sites, n_samples=500, seed=7)
    assert first.hit_probability[0] == again.hit_probability[0]


# ---------------------------------------------------------------- the plan


def test_plan_json_holds_the_issue_fields(tmp_path):
    rng = np.random.default_rng(5)
    mask = random_mask(rng, (200, 240), 5)
    plan = plan_insertions(vessel_map(mask, 10.0), 16, n_samples=300, seed=2)
    assert plan.complete and plan.n_sites == 16
    path = plan.write_json(tmp_path / "plan.json")
    document = json.loads(path.read_text())
    assert document["format"] == PLAN_FORMAT and document["version"] == 1
    assert document["clearance_um"] == 52.0 and document["min_margin_um"] >= 0
    raw_clearance = brute_force_clearance_um(plan.sites_xy_um, mask, 10.0)  # the planning map contains the mask
    assert (raw_clearance >= 52.0).all()
    assert document["estimated_duration_s"] > 16 * 10.0
    assert [site["order"] for site in document["sites"]] == list(range(1, 17))
    for site in document["sites"]:
        assert {"x_um", "y_um", "order", "depth_um", "margin_um", "hit_probability"} <= set(site)
        assert 0 <= site["x_um"] <= 2400 and 0 <= site["y_um"] <= 2000
        assert site["margin_um"] >= 0 and 0.0 <= site["hit_probability"] <= 1.0 and site["depth_um"] == 1650.0
    assert document["min_margin_um"] == pytest.approx(min(site["margin_um"] for site in document["sites"]), abs=1e-3)
    assert document["reasons"] == []
    png = plan_overlay(np.where(mask, 0.2, 0.8), vessel_map(mask, 10.0), plan, tmp_path / "plan.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_empty_plan_is_valid_json_with_the_reason(tmp_path):
    mask = np.ones((50, 50), dtype=bool)
    plan = plan_insertions(vessel_map(mask, 10.0), 4)
    document = json.loads(plan.to_json())
    assert document["sites"] == [] and document["min_margin_um"] is None and document["n_sites"] == 0
    assert document["estimated_duration_s"] == 0 and "covered by vessels" in document["reasons"][0]
