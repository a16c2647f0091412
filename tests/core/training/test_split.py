"""Holding out part of the annotation for validation: every image keeps training, the held-out area is capped."""

from __future__ import annotations

from helpers import synthetic_nuclei
from napari_unet_seg.core.training.data import TrainingPair
from napari_unet_seg.core.training.split import split_validation


def test_validation_split_keeps_every_image_training():
    image, labels = synthetic_nuclei((512, 512), n=10)
    small_image, small_labels = synthetic_nuclei((96, 96))
    train_pairs, val_pairs = split_validation(
        [TrainingPair(image, labels), TrainingPair(small_image, small_labels)], scribbles=False)
    assert len(train_pairs) == 2 and len(val_pairs) == 1
    held, kept = val_pairs[0].valid, train_pairs[0].valid
    assert not (held & kept).any() and (held | kept).all()
    assert 0.15 < held.mean() < 0.25


def test_held_out_area_is_capped_so_scoring_stays_cheap():
    image, labels = synthetic_nuclei((256, 256), n=8)
    pairs = [TrainingPair(image, labels, name=str(i)) for i in range(10)]
    budget = int(3.5 * 256 * 256 * 0.2)
    train_pairs, val_pairs = split_validation(pairs, scribbles=False, max_held_out=budget)
    assert len(train_pairs) == 10 and len(val_pairs) == 2  # 64-px strips (the minimum) while the budget lasts
    held = sum(int(p.valid.sum()) for p in val_pairs)
    assert held <= budget  # only the first strip may pass it (a big image is never left without a judge)


def test_a_big_image_still_holds_out_a_strip_within_the_budget():
    """Without one, nothing could tell that training made the user's big image worse."""
    import numpy as np

    from napari_unet_seg.core.training.data import TrainingPair
    from napari_unet_seg.core.training.split import split_validation

    labels = np.ones((1800, 3800), np.int64)
    train, val = split_validation([TrainingPair(np.zeros(labels.shape), labels, name="big")], scribbles=False)
    assert len(val) == 1 and len(train) == 1
    held = int(val[0].valid.sum())
    assert 64 * 1800 <= held <= 1024 * 1024 and not (val[0].valid & train[0].valid).any()


def test_a_third_of_a_small_image_still_has_a_judge_and_a_tiny_region_does_not():
    import numpy as np

    from napari_unet_seg.core.training.data import TrainingPair
    from napari_unet_seg.core.training.split import split_validation

    labels = np.ones((256, 320), np.int64)
    third = np.zeros(labels.shape, bool)
    third[:, :107] = True
    train, val = split_validation([TrainingPair(np.zeros(labels.shape), labels, third)], scribbles=False)
    assert len(val) == 1 and 0 < val[0].valid.sum() <= 0.4 * third.sum()
    tiny = np.zeros(labels.shape, bool)
    tiny[:100, :100] = True
    assert split_validation([TrainingPair(np.zeros(labels.shape), labels, tiny)], scribbles=False)[1] == []


def test_the_latest_corrections_are_held_out_before_earlier_rounds():
    """Earlier rounds' (replay) pairs get what the budget leaves, and always the same strip."""
    import numpy as np

    image, labels = synthetic_nuclei((256, 256), n=8)
    big_image, big_labels = synthetic_nuclei((512, 512), n=20)
    earlier = TrainingPair(big_image, big_labels, name="earlier", replay=True)
    latest = TrainingPair(image, labels, name="latest")
    budget = int(256 * 256 * 0.2) + 10
    _, val = split_validation([earlier, latest], scribbles=False, max_held_out=budget)
    assert [p.name for p in val] == ["latest (held out)"]  # the bigger earlier pair would have come first

    _, first = split_validation([TrainingPair(big_image, big_labels, name="x")], scribbles=False)
    _, again = split_validation([latest, earlier], scribbles=False)
    strip = next(p for p in again if p.replay).valid
    np.testing.assert_array_equal(strip, first[0].valid)  # the strip it had when it was the latest correction


def test_the_judge_is_the_end_of_the_image_that_holds_objects():
    """A far-end strip with no nucleus in it cannot tell a better model from a worse one."""
    import numpy as np

    image, labels = synthetic_nuclei((300, 600), n=30, seed=4)
    labels[:, 450:] = 0  # the far end of the longer side is empty
    _, val = split_validation([TrainingPair(image, labels)], scribbles=False)
    held = val[0].valid
    assert not held[:, -1].all()  # not the empty far end
    whole = [i for i in np.unique(labels[held]) if i and (labels[held] == i).sum() == (labels == i).sum()]
    assert len(whole) >= 5


def test_a_judge_with_too_few_objects_widens():
    import numpy as np

    labels = np.zeros((400, 400), np.int64)
    for k, x in enumerate(range(20, 380, 60)):  # 6 columns of nuclei, 60 px apart
        for j, y in enumerate(range(20, 380, 60)):
            labels[y:y + 20, x:x + 20] = 1 + k * 10 + j
    _, val = split_validation([TrainingPair(np.zeros(labels.shape), labels)], scribbles=False)
    whole = [i for i in np.unique(labels[val[0].valid]) if i and (labels[val[0].valid] == i).sum() == 400]
    assert len(whole) >= 9  # a 20 % strip (80 px) holds one column of 6; widened it holds two
    assert val[0].valid.mean() <= 0.4


def test_the_budget_counts_pixels_at_the_networks_scale():
    import numpy as np

    labels = np.ones((1000, 2000), np.int64)
    pair = TrainingPair(np.zeros(labels.shape), labels)
    at_own_scale = split_validation([pair], scribbles=False, max_held_out=200_000)[1][0].valid.sum()
    halved = split_validation([pair], scribbles=False, max_held_out=200_000, scales=[0.5])[1][0].valid.sum()
    assert at_own_scale <= 200_000 < halved <= 4 * 200_000


def test_an_earlier_rounds_strip_does_not_depend_on_what_else_is_held_out():
    """Otherwise a later round could score the parent on pixels it trained on, and call a good model forgetful."""
    import numpy as np

    image, labels = synthetic_nuclei((400, 400), n=40, seed=6)
    earlier = TrainingPair(image, labels, name="earlier")
    _, alone = split_validation([earlier], scribbles=False)
    big_image, big_labels = synthetic_nuclei((700, 700), n=90, seed=7)
    latest = TrainingPair(big_image, big_labels, name="latest")
    budget = 1024 * 1024
    _, both = split_validation([latest, TrainingPair(image, labels, name="earlier", replay=True)], scribbles=False,
                               max_held_out=budget)
    replayed = [p for p in both if p.replay]
    assert not replayed or np.array_equal(replayed[0].valid, alone[0].valid)
    assert replayed  # there is budget left for it here
    _, tight = split_validation([latest, TrainingPair(image, labels, name="earlier", replay=True)], scribbles=False,
                                max_held_out=int(0.25 * 700 * 700))
    assert not any(p.replay for p in tight)  # no budget left: it teaches, rather than judging on a narrower strip
