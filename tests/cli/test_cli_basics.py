import numpy as np
import pytest
import tifffile

from helpers import synthetic_nuclei
from napari_unet_seg import save_model
from napari_unet_seg.cli.main import main
from napari_unet_seg.core.inference.baseline import classical_nuclei
from napari_unet_seg.core.training.metrics import matching_accuracy


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as info:
        main(["predict", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--model", "--device", "--tile-size", "--batch-size", "-o"):
        assert option in text


def test_models_lists_user_models(capsys, private_model_dir, tiny_model):
    save_model(tiny_model, private_model_dir / "mine")
    assert main(["models"]) == 0
    assert "mine" in capsys.readouterr().out


def test_models_marks_the_model_napari_starts_on_and_lists_one_kept_elsewhere(capsys, private_model_dir, tiny_model,
                                                                              tmp_path):
    from napari_unet_seg.core.training.project import Project, default_project_dir

    mine = save_model(tiny_model, private_model_dir / "mine")
    Project(default_project_dir()).set_in_use(mine)
    assert main(["models"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("mine "))
    assert f"[in use: napari's docks start on it for objects, project {default_project_dir()}]" in line
    away = save_model(tiny_model, tmp_path / "elsewhere" / "away.safetensors")
    Project(default_project_dir()).set_in_use(away)
    assert main(["models"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("away "))
    assert "elsewhere" in line and str(away) in line and "give its path as --model" in line


def test_a_user_model_named_like_a_built_in_one_is_listed_as_hidden(capsys, private_model_dir, tiny_model):
    save_model(tiny_model, private_model_dir / "nuclei.safetensors")
    assert main(["models"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if "hidden" in line)
    assert line.startswith("nuclei ") and "rename the file to use it by name" in line
    assert str(private_model_dir / "nuclei.safetensors") in line


def test_models_says_which_fine_tunes_only_kept_their_parents_weights(capsys, private_model_dir, tiny_model):
    def run(kept, fitted=False):
        return {"base": "nuclei", "kept_weights": kept, "postprocess_fitted": {"changed": fitted}}

    for name, lineage in [("better", [run("trained")]), ("kept", [run("trained"), run("parent", fitted=True)]),
                          ("plain", [])]:
        tiny_model.metadata["lineage"] = lineage
        save_model(tiny_model, private_model_dir / name)
    assert main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "; fine-tuned from nuclei: better on its held-out annotation" in lines["better"]
    from napari_unet_seg.cli.models import last_run_verdict

    tie = dict(run("trained"), scores={"ap50_90": 1.0}, parent_scores={"ap50_90": 1.0})  # Train: "as good as"
    assert last_run_verdict({"lineage": [tie]}) == ("fine-tuned from nuclei: as good as nuclei on its held-out "
                                                   "annotation (both got it all right)")
    assert "; training did not beat nuclei: nuclei's weights, post-processing fitted" in lines["kept"]  # the last run
    assert "better" not in lines["plain"] and "better" not in lines["nuclei"]


def test_unknown_model_is_one_line_on_stderr(capsys, tmp_path):
    code = main(["predict", str(tmp_path / "x.tif"), "-o", str(tmp_path / "out"), "--model", "nope"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no model named 'nope'" in err


def test_evaluate_scores_model_and_baseline(capsys, tmp_path, tiny_model):
    image, labels = synthetic_nuclei((80, 90), n=8, seed=1)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    path = save_model(tiny_model, tmp_path / "m")
    code = main(["evaluate", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lab.tif"), "--model", str(path),
                 "--baseline", "--csv", str(tmp_path / "s.csv")])
    out = capsys.readouterr().out
    assert code == 0 and "AP50" in out and "baseline" in out and (tmp_path / "s.csv").exists()
    assert "mean: AP50" in out and "baseline Dice" in out and "(1 image)" in out
    assert main(["evaluate", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lab.tif"), str(tmp_path / "lab.tif")]) == 2
    capsys.readouterr()
    image_bytes, scores = (tmp_path / "img.tif").read_bytes(), (tmp_path / "s.csv").read_bytes()
    base = ["evaluate", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lab.tif"), "--model", str(path)]
    for csv_name, said in (("img.tif", "not a .csv name"), ("s.csv", "exists (use --overwrite")):
        assert main([*base, "--csv", str(tmp_path / csv_name)]) == 2  # the image, or a table kept unasked
        assert said in capsys.readouterr().err
    assert (tmp_path / "img.tif").read_bytes() == image_bytes and (tmp_path / "s.csv").read_bytes() == scores
    (tmp_path / "in.csv").write_bytes(image_bytes)  # an input named .csv: still never written over
    assert main(["evaluate", str(tmp_path / "in.csv"), "--labels", str(tmp_path / "lab.tif"), "--csv",
                 str(tmp_path / "in.csv"), "--overwrite"]) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    assert main([*base, "--csv", str(tmp_path / "s.csv"), "--overwrite"]) == 0
    from napari_unet_seg.core.export import write_ome_zarr

    scored = capsys.readouterr().out.splitlines()[0].split(":", 1)[1]
    store = write_ome_zarr(tmp_path / "truth.ome.zarr", labels.astype(np.uint16), image)  # image and labels
    assert main(["evaluate", str(tmp_path / "img.tif"), "--labels", str(store), "--model", str(path)]) == 0
    printed = capsys.readouterr()
    assert printed.out.splitlines()[0].split(":", 1)[1] == scored and "like an image" not in printed.err  # labels


def test_classical_baseline_finds_separated_disks():
    image, labels = synthetic_nuclei((128, 128), n=10, seed=3)
    assert matching_accuracy(labels, classical_nuclei(image)) > 0.8
    assert classical_nuclei(np.zeros((10, 10))).max() == 0


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("diameter", ["-5", "0", "nan", "inf"])
def test_bad_diameter_is_one_line_and_exit_2(capsys, tmp_path, command, diameter):
    image, labels = synthetic_nuclei((40, 40), n=3, seed=2)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    args = ["-o", str(tmp_path / "out")] if command == "predict" else ["--labels", str(tmp_path / "lab.tif")]
    assert main([command, str(tmp_path / "img.tif"), *args, f"--diameter={diameter}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--diameter must be a positive number" in err


def test_a_diameter_that_would_enlarge_the_image_absurdly_is_refused(capsys, tmp_path, tiny_model):
    image, labels = synthetic_nuclei((40, 40), n=3, seed=2)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    tiny_model.metadata["object_diameter"] = 20.0
    path = save_model(tiny_model, tmp_path / "m")
    code = main(["evaluate", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lab.tif"), "--model", str(path),
                 "--diameter", "0.5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "would enlarge the image 40x; give at least 2.5 px" in err


@pytest.fixture
def broken_models(private_model_dir, tiny_model):
    """A model folder with a good model, a file that is no model at all, and a copy cut short."""
    good = save_model(tiny_model, private_model_dir / "good")
    (private_model_dir / "garbage.safetensors").write_bytes(b"not a model at all")
    (private_model_dir / "cut.safetensors").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return private_model_dir


def test_models_names_why_a_file_is_unreadable(capsys, broken_models):
    assert main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "unreadable" not in lines["good"] and "unreadable" not in lines["nuclei"]
    assert "unreadable: " in lines["garbage"] and "is not a napari-unet-seg model file" in lines["garbage"]
    assert "unreadable: cut.safetensors is incomplete" in lines["cut"] and "cut short" in lines["cut"]


@pytest.mark.parametrize("name, reason", [("garbage", "is not a napari-unet-seg model file"),
                                          ("cut", "cut.safetensors is incomplete")])
def test_predicting_with_a_broken_model_file_is_one_line_and_exit_2(capsys, tmp_path, broken_models, name, reason):
    tifffile.imwrite(tmp_path / "img.tif", synthetic_nuclei((40, 40), n=3)[0])
    code = main(["predict", str(tmp_path / "img.tif"), "-o", str(tmp_path / "out"),
                 "--model", str(broken_models / f"{name}.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("unet-seg predict: error: ") and reason in err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_fp16_on_the_cpu_is_refused_before_any_file(capsys, tmp_path):
    """Not once per file of a batch: one line, before anything is read or written."""
    image, _ = synthetic_nuclei((40, 40), n=3, seed=2)
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(tmp_path / name, image)
    code = main(["predict", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "-o", str(tmp_path / "out"),
                 "--device", "cpu", "--precision", "fp16"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "fp16 is not supported on the CPU" in err
    assert not (tmp_path / "out").exists()
