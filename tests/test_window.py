"""The Window value object: mnmx order, the three units, the two pixel conventions, nesting, and
the float limit of a window."""
import numpy as np
import pytest

from nnfractal.config import Config
from nnfractal.training.grid import axes
from nnfractal.window import (
    CENTRES,
    ENDPOINTS,
    Window,
    cell_middles,
    pixel_units,
    to_values,
    ulps_per_pixel_on_axis,
    unit_grid,
)

EPS64 = float(np.finfo(np.float64).eps)


def test_mnmx_is_read_rows_first_and_written_back_in_the_same_order():
    w = Window.from_mnmx((-3.0, 1.0, 5.0, 7.0), "log")
    assert (w.x0, w.x1, w.y0, w.y1) == (5.0, 7.0, -3.0, 1.0)
    assert w.mnmx == (-3.0, 1.0, 5.0, 7.0)
    assert w.extent == (5.0, 7.0, -3.0, 1.0)
    assert w.size == (2.0, 4.0)
    assert w.centre == (6.0, -1.0)
    assert w.axis_scale == "log"


def test_of_a_config_takes_its_window_and_scale():
    cfg = Config(mnmx=(-2.0, 0.5, -3.0, 1.0), axis_scale="log")
    assert Window.of(cfg) == Window(-3.0, 1.0, -2.0, 0.5, "log")


def test_window_units_map_corners_to_the_window_corners_and_back():
    w = Window(10.0, 14.0, -1.0, 1.0)
    unit = np.array([[0.0, 0.0], [1.0, 1.0], [0.25, 0.75]])
    axis = w.to_axis(unit)
    np.testing.assert_array_equal(axis, [[10.0, -1.0], [14.0, 1.0], [11.0, 0.5]])
    np.testing.assert_allclose(w.to_unit(axis), unit, rtol=0, atol=1e-15)


def test_values_are_powers_of_ten_on_log_axes_only():
    unit = np.array([[0.5, 0.0]])
    np.testing.assert_allclose(Window(0.0, 2.0, -3.0, -1.0, "log").to_values(unit), [[10.0, 1e-3]])
    np.testing.assert_array_equal(Window(0.0, 2.0, 1.0, 3.0).to_values(unit), [[1.0, 1.0]])
    assert to_values(2.0, "log") == 100.0 and to_values(2.0, "linear") == 2.0


def test_endpoints_pixels_are_the_paper_codes_linspace_bit_for_bit():
    # The grid runs' stored hyperparameters must not move by one ulp.
    w = Window(-3.0, 6.0, -2.7, 0.4, "log")
    x, y = w.axes(257)
    assert np.array_equal(x, np.logspace(-3.0, 6.0, 257))
    assert np.array_equal(y, np.logspace(-2.7, 0.4, 257))
    xa, ya = w.axis_units(257)
    assert xa[0] == -3.0 and xa[-1] == 6.0 and ya[0] == -2.7 and ya[-1] == 0.4


def test_grid_axes_of_a_config_are_its_windows_endpoints_axes():
    cfg = Config(mnmx=(-2.0, 0.5, -3.0, 1.0), axis_scale="log", resolution=9)
    x, y = axes(cfg)
    assert np.array_equal(x, np.logspace(-3.0, 1.0, 9)) and np.array_equal(y, np.logspace(-2.0, 0.5, 9))


def test_the_two_pixel_conventions_put_pixels_where_their_names_say():
    np.testing.assert_array_equal(pixel_units(5, ENDPOINTS), [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(pixel_units(4, CENTRES), [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_array_equal(cell_middles(5, ENDPOINTS), [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_array_equal(cell_middles(4, CENTRES), [0.25, 0.5, 0.75])
    with pytest.raises(ValueError, match="pixels: 'corners'"):
        pixel_units(4, "corners")


def test_centres_axis_units_and_extent_stop_half_a_pixel_inside_the_window():
    w = Window(0.0, 8.0, 0.0, 4.0)
    x, y = w.axis_units(4, CENTRES)
    np.testing.assert_array_equal(x, [1.0, 3.0, 5.0, 7.0])
    np.testing.assert_array_equal(y, [0.5, 1.5, 2.5, 3.5])
    assert w.pixel_extent(4, CENTRES) == (1.0, 7.0, 0.5, 3.5)
    assert w.pixel_extent(4, ENDPOINTS) == w.extent


def test_unit_grid_is_row_major_with_row_zero_at_the_lowest_v():
    g = unit_grid(3, ENDPOINTS)
    assert g.shape == (9, 2)
    np.testing.assert_array_equal(g[:3], [[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(g[3 * 2 + 1], [0.5, 1.0])


def test_nested_window_keeps_its_size_and_moves_inside_the_outer_one():
    outer = Window(0.0, 10.0, 0.0, 10.0, "log")
    inside = outer.nested((5.0, 5.0), (2.0, 4.0))
    assert inside == Window(4.0, 6.0, 3.0, 7.0, "log")
    corner = outer.nested((0.5, 9.9), (2.0, 4.0))        # would leave at the left and the top
    assert corner == Window(0.0, 2.0, 6.0, 10.0, "log")
    assert outer.contains(corner.x0, corner.y1) and not outer.contains(-0.1, 5.0)


def test_ulps_per_pixel_against_hand_computed_values():
    # linear: a spacing of 1 next to values up to 2 is 1 / (2 eps) rounding units
    assert ulps_per_pixel_on_axis(1.0, 2.0, 2, "linear") == pytest.approx(1 / (2 * EPS64), rel=1e-12)
    # log: spacing 0.1 decade; |v| <= 1 so the exponent's rounding ln10*|v|*eps dominates eps
    assert ulps_per_pixel_on_axis(0.0, 1.0, 11, "log") == pytest.approx(0.1 / EPS64, rel=1e-12)
    # near v = 0 the power's own rounding (eps) is the limit
    assert ulps_per_pixel_on_axis(-0.1, 0.1, 3, "log") == pytest.approx(0.1 * np.log(10) / EPS64,
                                                                        rel=1e-12)
    assert ulps_per_pixel_on_axis(0.0, 0.0, 2, "linear") == np.inf
    # the window takes the worse axis, and float32 has 2**29 times fewer units
    w = Window(1.0, 2.0, 1.0, 1.5)
    assert w.ulps_per_pixel(2) == pytest.approx(0.5 / (1.5 * EPS64), rel=1e-12)
    assert w.ulps_per_pixel(2, "float32") == pytest.approx(w.ulps_per_pixel(2) / 2 ** 29, rel=1e-12)
