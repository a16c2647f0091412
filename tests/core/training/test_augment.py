import numpy as np
import pytest

from napari_unet_seg.core.training.augment import AugmentConfig, add_shot_noise, augment_intensity


def test_photon_noise_keeps_brightness_and_is_strongest_where_bright_and_dim():
    img = np.zeros((1, 200, 200), np.float32)
    img[:, 50:150, 50:150] = 1.0
    few = add_shot_noise(img, (20, 20), np.random.default_rng(0))
    many = add_shot_noise(img, (500, 500), np.random.default_rng(0))
    inside, outside = np.s_[:, 60:140, 60:140], np.s_[:, :40, :40]
    assert abs(few[inside].mean() - 1) < 0.02 and abs(few[outside].mean()) < 0.01
    assert few[inside].std() > 3 * few[outside].std()  # Poisson: noise grows with the signal
    assert few[inside].std() > 4 * many[inside].std()  # fewer photons, more noise (sqrt(25) = 5x)


def test_photon_noise_only_when_asked():
    img = np.zeros((1, 64, 64), np.float32)
    img[:, 20:40, 20:40] = 1.0
    quiet = AugmentConfig(dim_objects=False, texture=False, max_noise=0.0)
    noisy = AugmentConfig(dim_objects=False, texture=False, max_noise=0.0, shot_noise=(20.0, 20.0))
    spread_quiet = max(augment_intensity(img, None, quiet, np.random.default_rng(s))[:, 25:35, 25:35].std()
                       for s in range(20))
    spread_noisy = max(augment_intensity(img, None, noisy, np.random.default_rng(s))[:, 25:35, 25:35].std()
                       for s in range(20))
    assert spread_quiet < 0.02 < spread_noisy


def _disks(shape=(128, 128), radius=9, spacing=32):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    labels = np.zeros(shape, np.int64)
    k = 0
    for cy in range(spacing // 2, shape[0], spacing):
        for cx in range(spacing // 2, shape[1], spacing):
            k += 1
            labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = k
    image = np.where(labels > 0, 0.9, 0.05).astype(np.float32)[None]
    return image, labels


def test_empty_regions_hold_no_object_and_are_flat_or_background():
    from napari_unet_seg.core.training.augment import add_empty_regions

    image, labels = _disks()
    changed = 0
    for seed in range(20):
        img, lab = add_empty_regions(image, labels, np.random.default_rng(seed))
        region = (img[0] != image[0])
        assert img.shape == image.shape and lab.shape == labels.shape
        assert not lab[region].any()  # nothing where the band or patch is
        assert ((lab == labels) | (lab == 0)).all()  # objects are only cut, never moved or renamed
        changed += int(region.any())
    assert changed >= 15  # nearly every call adds something
    assert (image == _disks()[0]).all()  # the caller's arrays are left alone


def test_nucleoli_change_only_the_inside_of_objects():
    from napari_unet_seg.core.training.augment import add_nucleoli

    image, labels = _disks()
    out = add_nucleoli(image, labels, 0.05, np.random.default_rng(1))
    changed = np.abs(out[0] - image[0]) > 1e-6
    assert changed.any() and not changed[labels == 0].any()


def test_anisotropic_crops_stretch_image_and_labels_together():
    from napari_unet_seg.core.training.augment import random_crop

    image, labels = _disks((256, 256))
    img, lab, val = random_crop(image, labels, None, 64, 0.5, np.random.default_rng(0), aspect=1.25)
    assert img.shape == (1, 64, 64) and lab.shape == (64, 64) and val.shape == (64, 64)
    inside = lab > 0
    assert img[0][inside].mean() > 0.6 and img[0][~inside].mean() < 0.3  # labels still lie on the disks
    ys, xs = np.nonzero(lab == np.bincount(lab[lab > 0]).argmax())
    assert np.ptp(ys) > np.ptp(xs)  # rows scaled 0.5 * 1.25, columns 0.5 / 1.25: a disk becomes taller than wide


@pytest.mark.parametrize("scale", [0.7, 0.83, 1.3, 1.45])
def test_a_resized_crop_keeps_its_labels_on_the_image_they_teach(scale):
    """Image (bilinear) and labels (nearest) of a resized crop sample the same pixel centres: no half-pixel shift
    between what the network sees and the target it learns (it shifted every model's outlines down and right)."""
    from napari_unet_seg.core.training.augment import random_crop

    yy, xx = np.mgrid[:240, :240]
    labels = ((yy - 117.3) ** 2 + (xx - 121.6) ** 2 < 41 ** 2).astype(np.int64)
    image = labels[None].astype(np.float32)  # the image is its labels: where it is bright, they must be 1
    shifts = []
    for seed in range(6):
        img, lab, _ = random_crop(image, labels, None, 96, scale, np.random.default_rng(seed), centre=(117, 121))
        bright, object_ = np.argwhere(img[0] > 0.5), np.argwhere(lab > 0)
        shifts.append(bright.mean(axis=0) - object_.mean(axis=0))
    assert np.all(np.abs(np.mean(shifts, axis=0)) < 0.15), shifts  # floor(i * side / crop) gave 0.35-0.5 px
