import numpy as np

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
