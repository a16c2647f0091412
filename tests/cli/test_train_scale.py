"""``unet-seg train`` trains at predict's scale and says plainly whether the result beat its parent."""

from __future__ import annotations

import re

import tifffile

from helpers import synthetic_nuclei, threshold_model
from napari_unet_seg.cli.main import main
from napari_unet_seg.core.model.modelfile import read_metadata, save_model


def test_train_records_its_scale_and_compares_with_the_parent(tmp_path, capsys):
    parent = threshold_model()
    parent.metadata["object_diameter"] = 20.0
    parent_path = save_model(parent, tmp_path / "parent.safetensors")
    image, labels = synthetic_nuclei((320, 320), n=30, radius=(17, 21), seed=2)  # ~40 px nuclei
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    out = tmp_path / "child.safetensors"
    code = main(["train", "--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lbl.tif"),
                 "--init", str(parent_path), "--max-steps", "2", "--diameter", "40", "-o", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "held-out annotation" in printed.out
    assert "fitting post-processing to your annotation..." in printed.out  # said before the seconds it takes
    assert "better than 'parent'" in printed.out.lower()  # "better than" or "not better than": said either way
    run = read_metadata(out)["lineage"][-1]
    assert run["data"][0]["scale"] == 0.5 and run["data"][0]["object_diameter"] == 40.0
    assert set(run["parent_scores"]) == {"ap50_90", "ap50", "dice", "wrong_objects"}
    shown = re.search(r"held-out AP50-90 \d\.\d{3} \(best \d\.\d{3}, parent (\d\.\d{3})\)", printed.out)
    assert shown, printed.out  # the parent's score beside each held-out score (the lineage keeps it rounded)
    assert abs(float(shown.group(1)) - run["parent_scores"]["ap50_90"]) <= 0.0015
    assert "child-checkpoint.safetensors" in printed.out  # said where the checkpoints go...
    assert not (tmp_path / "child-checkpoint.safetensors").exists()  # ...and replaced by the final model


def test_a_diameter_slip_is_one_line(tmp_path, capsys):
    image, labels = synthetic_nuclei((64, 64), seed=1)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    for bad in ("0", "-3", "nan"):
        code = main(["train", "--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lbl.tif"),
                     "--diameter", bad, "-o", str(tmp_path / "m.safetensors")])
        err = capsys.readouterr().err
        assert code == 2 and "--diameter must be a positive number" in err and "Traceback" not in err


def test_train_with_a_project_remembers_pairs_and_replays_earlier_rounds(tmp_path, capsys):
    import json

    from napari_unet_seg.core.training.project import Project

    parent = threshold_model()
    parent.metadata["object_diameter"] = 14.0
    parent_path = save_model(parent, tmp_path / "parent.safetensors")
    project = tmp_path / "project"
    for round_, seed in enumerate((2, 5)):
        image, labels = synthetic_nuclei((200, 200), n=20, seed=seed)
        tifffile.imwrite(tmp_path / f"img{round_}.tif", image)
        tifffile.imwrite(tmp_path / f"lbl{round_}.tif", labels)
        code = main(["train", "--image", str(tmp_path / f"img{round_}.tif"), "--labels",
                     str(tmp_path / f"lbl{round_}.tif"), "--init", str(parent_path), "--max-steps", "2",
                     "--diameter", "14", "--project", str(project), "-o", str(tmp_path / f"m{round_}.safetensors")])
        printed = capsys.readouterr()
        assert code == 0, printed.err
    assert "training on 2 pair(s), 1 of them from earlier rounds" in printed.out
    saved = Project(project)
    assert len(saved) == 2 and [m["path"] for m in saved.models] == [str(tmp_path / f"m{i}.safetensors")
                                                                    for i in range(2)]
    run = read_metadata(tmp_path / "m1.safetensors")["lineage"][-1]
    assert {"ap50_earlier", "dice_earlier"} <= set(run["parent_scores"])  # the earlier round judged too
    assert json.loads((project / "project.json").read_text())["models"][1]["parent"] == str(parent_path)


def test_a_damaged_project_is_one_line(tmp_path, capsys):
    image, labels = synthetic_nuclei((64, 64), seed=1)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "project.json").write_text("{not json")
    code = main(["train", "--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lbl.tif"),
                 "--project", str(tmp_path / "project"), "-o", str(tmp_path / "m.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and "is damaged" in err and "Traceback" not in err


def test_a_new_model_trained_into_a_project_becomes_its_model_in_use(tmp_path, capsys):
    """As from the Train dock: napari's docks on this project start on the model the command line made."""
    from napari_unet_seg.core.training.project import Project

    image, labels = synthetic_nuclei((64, 64), seed=1)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    code = main(["train", "--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lbl.tif"), "--init",
                 "none", "--depth", "2", "--width", "4", "--max-steps", "2", "--project", str(tmp_path / "project"),
                 "-o", str(tmp_path / "m.safetensors")])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert Project(tmp_path / "project").in_use == tmp_path / "m.safetensors"
    assert "training a new model (instances" in printed.out  # not "training scratch"
    assert f"it is now the model in use of project {tmp_path / 'project'}" in printed.out


def _round_without_init(tmp_path, project, capsys):
    """`unet-seg train --project` with no --init, two steps on synthetic 14-px nuclei: what it printed."""
    image, labels = synthetic_nuclei((200, 200), n=20, seed=2)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    code = main(["train", "--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lbl.tif"),
                 "--max-steps", "2", "--diameter", "14", "--project", str(project),
                 "-o", str(tmp_path / "m.safetensors")])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    return printed


def test_a_round_without_init_continues_from_the_projects_model_in_use(tmp_path, capsys):
    """It started from the built-in model and, when better than that, put its model in use over the project's
    own better one: the loop stepped back."""
    import json

    from napari_unet_seg.core.training.project import Project

    parent = threshold_model()
    parent.metadata["object_diameter"] = 14.0
    in_use = save_model(parent, tmp_path / "yesterdays-round.safetensors")
    project = tmp_path / "project"
    Project(project).set_in_use(in_use)
    printed = _round_without_init(tmp_path, project, capsys)
    assert f"starting from project {project}'s model in use, yesterdays-round" in printed.out
    assert "better than 'yesterdays-round'" in printed.out.lower()
    assert json.loads((project / "project.json").read_text())["models"][0]["parent"] == str(in_use)


def test_a_cli_round_does_not_replace_a_model_napari_put_in_use_while_it_trained(tmp_path, capsys, monkeypatch):
    """Launched before a napari round that finished first, it made its own model the project's model in use,
    though it was only ever compared with its own starting point."""
    from napari_unet_seg.cli import train as train_cli
    from napari_unet_seg.core.training.project import Project

    project = tmp_path / "project"
    napari_round = save_model(threshold_model(), tmp_path / "napari-round.safetensors")
    image, labels = synthetic_nuclei((64, 64), seed=1)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    real = train_cli.finetune

    def meanwhile_napari_puts_its_round_in_use(*args, **kwargs):
        Project(project).set_in_use(napari_round)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_cli, "finetune", meanwhile_napari_puts_its_round_in_use)
    code = main(["train", "--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lbl.tif"), "--init",
                 "none", "--depth", "2", "--width", "4", "--max-steps", "2", "--project", str(project),
                 "-o", str(tmp_path / "m.safetensors")])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert Project(project).in_use == napari_round  # napari's choice stands
    assert (f"it is not made the model in use of project {project}: 'napari-round' was put in use there while "
            "this round trained") in printed.out


def test_a_round_without_init_finds_the_model_in_use_renamed_in_the_model_folder(tmp_path, capsys,
                                                                                 private_model_dir):
    from napari_unet_seg.core.training.project import Project

    parent = threshold_model()
    parent.metadata.update(object_diameter=14.0, lineage=[{"date": "2026-12-01T09:00:00Z"}])
    in_use = save_model(parent, private_model_dir / "round-3.safetensors")
    project = tmp_path / "project"
    Project(project).record_model(in_use, {"parent": "nuclei", "improved": True})
    Project(project).set_in_use(in_use)
    renamed = in_use.rename(private_model_dir / "my tissue.safetensors")
    printed = _round_without_init(tmp_path, project, capsys)
    assert f"its model in use, 'round-3', is now {renamed}" in printed.out
    assert "starting from project" in printed.out and "my tissue" in printed.out
