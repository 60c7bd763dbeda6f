"""Tests for dnnl.plot: paper-step labels, image grids and GIFs of the reverse chain."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dnnl.models.ddpm import NoiseSchedule, sample
from dnnl.plot import make_grid_image, paper_step, save_gif, save_grid, step_label

SCHEDULE = NoiseSchedule.linear(1000)


def smooth_eps(x, t):
    return 0.7 * torch.tanh(x) + 0.05 * torch.cos(t.float() / 50).reshape(-1, 1, 1, 1)


def test_paper_steps_are_code_index_plus_one():
    assert paper_step(0) == 1 and paper_step(np.int64(99)) == 100
    assert step_label(99) == "t = 100" and step_label(99, index=True) == "t = 100 (code index 99)"


def test_grid_png_and_grid_image(tmp_path):
    from PIL import Image

    images = torch.linspace(-1, 1, 10 * 28 * 28).reshape(10, 1, 28, 28)
    path = save_grid(images, tmp_path / "sub" / "grid.png", nrow=5)
    with Image.open(path) as im:
        assert im.size == (5 * 30 + 2, 2 * 30 + 2)  # 28-pixel tiles with 2-pixel padding
        assert im.mode == "RGB"
    array = make_grid_image(images, nrow=5)
    assert array.shape == (2 * 30 + 2, 5 * 30 + 2, 3) and array.dtype == np.float32
    assert array.min() >= 0 and array.max() <= 1
    # the first tile's first pixel is -1 (black) and the last tile's last pixel is +1 (white)
    assert array[2, 2, 0] == 0 and array[30 + 29, 4 * 30 + 29, 0] == 1
    with Image.open(path) as im:  # the PNG holds the same picture as the array
        assert np.array_equal(np.asarray(im), (array * 255 + 0.5).clip(0, 255).astype(np.uint8))


def test_rgb_images_keep_their_colours(tmp_path):
    from PIL import Image

    images = -torch.ones(2, 3, 4, 4)
    images[:, 0] = 1.0  # pure red
    path = save_grid(images, tmp_path / "red.png", nrow=2, padding=0)
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.getpixel((1, 1)) == (255, 0, 0)


def test_nan_images_are_refused_not_drawn_black(tmp_path):
    images = torch.zeros(5, 1, 4, 4)
    images[1, 0, 2, 2] = float("nan")
    images[3, 0, 0, 0] = float("inf")
    for draw in (lambda: save_grid(images, tmp_path / "nan.png"), lambda: make_grid_image(images)):
        with pytest.raises(ValueError, match=r"images must be finite: image\(s\) 1, 3 of 5"):
            draw()
    assert not (tmp_path / "nan.png").exists()


@pytest.mark.parametrize("channels", [2, 4])
def test_only_grey_or_rgb_images_are_drawn(tmp_path, channels):
    with pytest.raises(ValueError, match=rf"1 \(grey\) or 3 \(RGB\) channels.*C={channels}"):
        save_grid(torch.zeros(2, channels, 4, 4), tmp_path / "x.png")


def test_gif_of_the_reverse_chain(tmp_path):
    from PIL import Image

    states = sample(smooth_eps, SCHEDULE, (4, 1, 8, 8), steps=30, progress=False, return_trajectory=True).trajectory
    path = save_gif(states, tmp_path / "chain.gif", nrow=2, frames=10, duration_ms=50, scale=3)
    with Image.open(path) as im:
        assert im.is_animated and im.n_frames == 10
        assert im.size == (3 * (2 * 10 + 2), 3 * (2 * 10 + 2))
        im.seek(im.n_frames - 1)
        assert im.info["duration"] >= 50
    with pytest.raises(ValueError, match="trajectory must be a non-empty list"):
        save_gif([], tmp_path / "empty.gif")
    with pytest.raises(ValueError, match="frames"):
        save_gif(states, tmp_path / "x.gif", frames=0)


def test_gif_frames_must_share_one_shape(tmp_path):
    frames = [torch.zeros(4, 1, 8, 8), torch.zeros(4, 1, 8, 8), torch.zeros(4, 1, 12, 12)]
    with pytest.raises(ValueError, match=r"trajectory\[2\] has \(4, 1, 12, 12\) but trajectory\[0\] has"):
        save_gif(frames, tmp_path / "x.gif")
    assert not (tmp_path / "x.gif").exists()


def test_a_gif_from_one_stacked_tensor_equals_one_from_the_list(tmp_path):
    from PIL import Image

    states = sample(smooth_eps, SCHEDULE, (2, 1, 4, 4), steps=5, progress=False, return_trajectory=True).trajectory
    a = save_gif(states, tmp_path / "a.gif", nrow=2)
    b = save_gif(torch.stack(states), tmp_path / "b.gif", nrow=2)
    with Image.open(a) as ia, Image.open(b) as ib:
        assert ia.n_frames == ib.n_frames == 6
        for k in range(ia.n_frames):
            ia.seek(k)
            ib.seek(k)
            assert np.array_equal(np.asarray(ia.convert("L")), np.asarray(ib.convert("L")))


def test_training_previews_write_a_grid_of_64_samples(tmp_path):
    """train()'s sample previews go through sample(...).images and dnnl.plot.save_grid, for ε-only and
    learned-variance models alike."""
    from PIL import Image

    from dnnl.models.ddpm import UNet
    from dnnl.models.ddpm.sample import save_preview

    for out, variance in ((1, "fixed_small"), (2, "learned_range")):
        ema = UNet(channels=(8, 16), num_res_blocks=1, attention=False, groups=4, heads=2, out_channels=out).eval()
        path = tmp_path / "samples" / f"step_00000{out}.png"
        save_preview(ema, SCHEDULE, (64, 1, 8, 8), path, steps=2, seed=0, variance_type=variance)
        with Image.open(path) as im:
            assert im.size == (8 * 10 + 2, 8 * 10 + 2)
