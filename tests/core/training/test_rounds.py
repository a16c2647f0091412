"""Round 2 of the loop on the same image keeps round 1's corrections where the user changed nothing this time."""

from __future__ import annotations

import numpy as np

from napari_unet_seg.core.training.data import TrainingPair
from napari_unet_seg.core.training.project import Project
from napari_unet_seg.core.training.rounds import merge_rounds


def _disk(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def _rounds():
    """Round 1 corrected the left (three nuclei); round 2's model output missed one there, and the user
    corrected only the right this time (a nucleus added)."""
    shape = (64, 128)
    earlier = np.zeros(shape, np.int64)
    for i, centre in enumerate([(16, 16), (48, 16), (32, 40)], start=1):
        earlier[_disk(shape, centre, 7)] = i
    latest = np.zeros(shape, np.int64)
    latest[_disk(shape, (16, 16), 7)] = 5  # the new model found two of the three...
    latest[_disk(shape, (48, 16), 7)] = 6
    latest[_disk(shape, (32, 100), 8)] = 9  # ...and the user painted one on the right
    edited = np.zeros(shape, bool)
    edited[:, 64:] = True  # the tiles the user changed
    return earlier, latest, edited


def test_the_earlier_correction_stays_where_nothing_was_edited_and_the_edits_win_where_they_are():
    earlier, latest, edited = _rounds()
    merged = merge_rounds(earlier, None, latest, None, edited)
    assert merged.valid is None and merged.kept == 3
    left, right = merged.labels[:, :64], merged.labels[:, 64:]
    assert len(np.unique(left[left > 0])) == 3  # the nucleus the new model missed is still annotated
    assert np.array_equal(right > 0, latest[:, 64:] > 0)  # what the user painted now
    assert set(np.unique(right[right > 0])).isdisjoint(np.unique(left[left > 0]))  # never two objects as one id
    assert np.array_equal(merge_rounds(earlier, None, latest, None, np.zeros_like(edited)).labels, latest)


def test_an_object_cut_by_the_edited_region_is_left_out_not_learnt_as_two_halves():
    earlier, latest, edited = _rounds()
    earlier[_disk(earlier.shape, (32, 64), 9)] = 7  # an earlier nucleus across the seam...
    latest[_disk(latest.shape, (32, 64), 9) & (np.arange(128) >= 60)] = 8  # ...drawn now over its right part only
    wider = latest.copy()
    wider[_disk(latest.shape, (32, 52), 4)] = 11  # a new-round object overlapping it, outside the edits
    merged = merge_rounds(earlier, None, wider, None, edited)
    labels, valid = merged.labels, merged.valid
    assert valid is not None and valid[_disk(earlier.shape, (32, 100), 8)].all()  # the painted nucleus: learnt
    cut = (wider == 11) & _disk(earlier.shape, (32, 64), 9)  # the part of object 11 taken into the edited region
    assert cut.any() and not valid[cut].any()
    for i in np.unique(labels[valid & (labels > 0)]):  # every object still annotated is whole
        assert valid[labels == i].all()


def test_the_project_merges_a_second_rounds_labels_of_the_same_image(tmp_path):
    earlier, latest, edited = _rounds()
    image = np.random.default_rng(0).random(earlier.shape).astype(np.float32)
    project = Project(tmp_path / "project")
    key = project.add(TrainingPair(image, earlier, name="cells"))
    assert project.add(TrainingPair(image, latest, name="cells", edited=edited)) == key  # the same image
    assert project.kept_from_earlier == {key: 3} and len(project) == 1
    (saved,) = Project(tmp_path / "project").pairs()
    assert len(np.unique(saved.labels[:, :64])) == 4  # background and round 1's three nuclei
    assert (saved.labels[:, 64:] > 0).sum() == (latest[:, 64:] > 0).sum()
    # labels of unknown making (a file, a hand-painted layer) replace the saved ones, as before
    project.add(TrainingPair(image, latest, name="cells"))
    (saved,) = Project(tmp_path / "project").pairs()
    assert np.array_equal(saved.labels > 0, latest > 0) and project.kept_from_earlier == {}
