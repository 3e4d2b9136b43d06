"""Condition-image preprocessing: every PIL mode, alpha vs estimated foreground, centring and margin,
reason codes for tiny and empty inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gen3d.errors import InputError
from gen3d.stages.shape_dit.preprocess import prepare_image, to_rgba


def _disk(size=128, centre=(40, 80), radius=20, colour=(200, 30, 30), background=(255, 255, 255)):
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    image = np.empty((size, size, 3), np.uint8)
    image[:] = background
    image[inside] = colour
    return image, inside


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "CMYK", "I;16"])
def test_every_mode_becomes_rgba_in_unit_range(mode):
    rgb, _ = _disk()
    image = Image.fromarray(rgb)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image.convert("L"), np.uint16) * 257)
    else:
        image = image.convert(mode)
    rgba = to_rgba(image)
    assert rgba.shape == (128, 128, 4) and rgba.dtype == np.float32
    assert 0.0 <= rgba.min() and rgba.max() <= 1.0 and np.all(rgba[..., 3] == 1.0)
    assert abs(rgba[0, 0, :3].mean() - 1.0) < 0.02  # the white background survives every conversion


def test_estimated_foreground_is_centred_with_the_margin():
    rgb, _ = _disk()  # off-centre disk of diameter 41 on white
    out = prepare_image(Image.fromarray(rgb), size=100, margin=0.1)
    assert out.foreground == "border-estimate"
    rows, cols = np.nonzero(out.mask > 0.5)
    assert abs(rows.mean() - 49.5) < 1.0 and abs(cols.mean() - 49.5) < 1.0
    assert abs((rows.max() - rows.min() + 1) - 80) <= 2  # object spans 1 - 2 * margin of the side
    assert out.image[0, 0].max() == 0.0  # background becomes black, as in the prepared training views
    assert out.image[50, 50, 0] > 0.7  # the red object


def test_alpha_channel_is_used_when_present():
    rgb, inside = _disk(background=(200, 30, 30))  # object and background share a colour: only alpha tells
    rgba = np.dstack([rgb, (inside * 255).astype(np.uint8)])
    out = prepare_image(Image.fromarray(rgba, "RGBA"), size=64)
    assert out.foreground == "alpha"
    assert 0.45 < out.mask.mean() < 0.7  # a disk filling 80% of the side covers pi/4 * 0.64 = 50%


def test_the_foregrounds_aspect_is_measured_in_the_inputs_own_pixels():
    rgba = np.zeros((90, 200, 4), np.uint8)
    rgba[20:50, 40:160] = 255  # an opaque rectangle 120 wide, 30 high
    out = prepare_image(Image.fromarray(rgba, "RGBA"), size=32)
    assert out.aspect == 4.0  # exact: not rounded to the 32 px condition image


def test_reason_codes_for_tiny_and_empty_images():
    with pytest.raises(InputError) as tiny:
        prepare_image(Image.new("RGB", (20, 300)))
    assert tiny.value.reason == "image_too_small"
    with pytest.raises(InputError) as empty:
        prepare_image(Image.new("RGB", (64, 64), (255, 255, 255)))
    assert empty.value.reason == "image_unreadable"


def test_a_given_mask_is_used_even_when_the_object_fills_the_view():
    """A rendered view whose object covers every pixel: the estimate finds no border colour, the
    renderer's coverage mask is used instead and the object is shrunk into the margin."""
    full = Image.new("RGB", (64, 64), (90, 160, 40))
    out = prepare_image(full, size=50, margin=0.1, mask=np.ones((64, 64)))
    assert out.foreground == "given"
    assert out.mask[0, 0] == 0.0 and out.mask[25, 25] == 1.0 and abs(out.mask.mean() - 0.64) < 0.03


def test_the_outline_is_the_mask_at_its_own_size_from_one_foreground_estimate(monkeypatch):
    """`outline_size` gives the coverage a separate call at that size would give, without estimating the
    foreground of a picture without alpha a second time."""
    import gen3d.stages.shape_dit.preprocess as preprocess

    rgb, _ = _disk()
    picture = Image.fromarray(rgb)
    alone = prepare_image(picture, size=96).mask  # (96, 96)
    calls = []
    estimate = preprocess.foreground_mask
    monkeypatch.setattr(preprocess, "foreground_mask", lambda rgba: calls.append(1) or estimate(rgba))
    both = prepare_image(picture, size=40, outline_size=96)
    assert len(calls) == 1 and both.outline.shape == (96, 96) and both.mask.shape == (40, 40)
    np.testing.assert_array_equal(both.outline, alone)
    assert prepare_image(picture, size=40).outline is None
