import json

import numpy as np
import pytest
from export_shapes import awkward_labels, fill_rings, polygon_area, provenance_record, stack_labels
from scipy import ndimage
from skimage.measure import label

from napari_unet_seg.core.export import write_geojson


def feature_mask(feature, shape):
    return fill_rings([ring for polygon in feature_polygons(feature) for ring in polygon], shape)


def feature_polygons(feature):
    geometry = feature["geometry"]
    return [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]


def corner_touching_labels() -> np.ndarray:
    """200+ blobs labelled 8-connected, so pieces, holes and notches meet at pixel corners."""
    field = ndimage.gaussian_filter(np.random.default_rng(2).random((160, 160)), 1.0)
    return label(field > np.quantile(field, 0.63), connectivity=2)


def check_simple_features(features, labels) -> None:
    """Each feature's rings are closed, visit no vertex twice, sit on pixel corners, and give the object's
    pixel count as area and its pixels when filled (even-odd)."""
    assert sorted(f["properties"]["label"] for f in features) == list(np.unique(labels[labels > 0]))
    for feature in features:
        mask = labels == feature["properties"]["label"]
        rings = [ring for polygon in feature_polygons(feature) for ring in polygon]
        for ring in rings:
            assert ring[0] == ring[-1] and len(ring) >= 5
            assert all(isinstance(v, int) for vertex in ring for v in vertex)
            assert len(set(map(tuple, ring[:-1]))) == len(ring) - 1, feature["properties"]["label"]
        assert polygon_area([ring[:-1] for ring in rings]) == mask.sum()
        assert np.array_equal(feature_mask(feature, labels.shape), mask)


def test_one_qupath_detection_per_object_that_fills_back_exactly(tmp_path):
    labels = awkward_labels()
    data = json.loads(write_geojson(tmp_path / "o.geojson", labels).read_text())
    assert data["type"] == "FeatureCollection"
    features = data["features"]
    assert [f["properties"]["label"] for f in features] == [1, 2, 3, 4, 5, 6, 7, 8, 70000]
    for feature in features:
        props = feature["properties"]
        assert props["objectType"] == "detection" and props["name"] == f"label {props['label']}"
        assert np.array_equal(feature_mask(feature, labels.shape), labels == props["label"])
        for polygon in ([feature["geometry"]["coordinates"]] if feature["geometry"]["type"] == "Polygon"
                        else feature["geometry"]["coordinates"]):
            for ring in polygon:
                assert ring[0] == ring[-1] and len(ring) >= 4  # closed linear rings


def test_a_hole_is_an_interior_ring_and_pieces_a_multipolygon(tmp_path):
    features = {f["properties"]["label"]: f for f in
                json.loads(write_geojson(tmp_path / "o.geojson", awkward_labels()).read_text())["features"]}
    ring_object = features[2]["geometry"]
    assert ring_object["type"] == "Polygon" and len(ring_object["coordinates"]) == 2
    assert features[4]["geometry"]["type"] == "MultiPolygon" and len(features[4]["geometry"]["coordinates"]) == 3
    assert features[1]["geometry"]["type"] == "Polygon" and len(features[1]["geometry"]["coordinates"]) == 1


def test_a_hole_that_touches_the_outline_at_a_corner_is_an_interior_ring(tmp_path):
    labels = np.array([[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 0, 1, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 0]], np.uint16)
    (feature,) = json.loads(write_geojson(tmp_path / "pinch.geojson", labels).read_text())["features"]
    assert feature["geometry"]["type"] == "Polygon"
    exterior, hole = feature["geometry"]["coordinates"]  # not one ring that pinches at (2, 3)
    assert set(map(tuple, exterior)) == {(2, 4), (2, 3), (1, 3), (1, 1), (4, 1), (4, 4)}
    assert set(map(tuple, hole)) == {(2, 3), (3, 3), (3, 2), (2, 2)}
    check_simple_features([feature], labels)


def test_objects_touching_themselves_at_corners_give_simple_rings(tmp_path):
    labels = corner_touching_labels()
    features = json.loads(write_geojson(tmp_path / "c.geojson", labels).read_text())["features"]
    assert len(features) >= 200
    check_simple_features(features, labels)
    assert sum(f["geometry"]["type"] == "MultiPolygon" for f in features) > 20
    assert sum(len(polygon) > 1 for f in features for polygon in feature_polygons(f)) > 10


def test_polygons_are_valid_ogc_geometry(tmp_path):
    shapely_geometry = pytest.importorskip("shapely.geometry")
    from shapely.validation import explain_validity

    checker = np.zeros((8, 8), np.uint16)
    checker[1:7, 1:7] = np.indices((6, 6)).sum(axis=0) % 2 == 0  # one object of pieces touching at corners
    for labels in (corner_touching_labels(), checker, awkward_labels()):
        for feature in json.loads(write_geojson(tmp_path / "v.geojson", labels, overwrite=True).read_text())[
                "features"]:
            geometry = shapely_geometry.shape(feature["geometry"])
            assert geometry.is_valid, (feature["properties"]["label"], explain_validity(geometry))
            assert geometry.area == (labels == feature["properties"]["label"]).sum()


def test_measurements_and_classification_travel_with_each_object(tmp_path):
    labels = awkward_labels()
    ids = [1, 2, 3, 4, 5, 6, 7, 8, 70000]
    table = {"label": np.array(ids), "area": np.array([float((labels == i).sum()) for i in ids]),
             "mean_intensity": np.array([np.nan] + [1.5] * 8), "note": np.array(["x"] * 9)}
    path = write_geojson(tmp_path / "o.geojson", labels, measurements=table, classification="Nucleus")
    features = json.loads(path.read_text())["features"]
    first, second = features[0]["properties"], features[1]["properties"]
    assert first["classification"] == {"name": "Nucleus"}
    assert first["measurements"] == {"label": 1, "area": float((labels == 1).sum())}  # NaN and text left out
    assert second["measurements"]["mean_intensity"] == 1.5


def test_each_object_s_class_from_the_measurements_becomes_its_qupath_classification(tmp_path):
    from napari_unet_seg.core.measure.measurements import measure_objects

    stack = stack_labels()
    classes = np.where(stack == 2, 3, np.where(stack > 0, 1, 0)).astype(np.uint8)
    classes[0] = 0  # nothing classified in the first slice
    table = measure_objects(stack, classes=classes, class_names=["background", "tumour", "stroma", "immune"])
    features = json.loads(write_geojson(tmp_path / "c.geojson", stack, measurements=table,
                                        classification="Nucleus").read_text())["features"]
    found = [(f["properties"]["slice"], f["properties"]["label"], f["properties"]["classification"]["name"])
             for f in features]
    assert found == [(0, 1, "Nucleus"), (1, 1, "tumour"), (1, 2, "immune"), (2, 1, "tumour")]
    assert all("class_name" not in f["properties"]["measurements"] for f in features)  # text is not a measurement
    assert features[1]["properties"]["measurements"]["class"] == 1


def test_stack_objects_carry_their_plane(tmp_path):
    stack = stack_labels()
    table = {"label": [1, 1, 2, 1], "slice": [0, 1, 1, 2], "area": [1.0, 2.0, 3.0, 4.0]}
    features = json.loads(write_geojson(tmp_path / "s.geojson", stack, measurements=table,
                                        stack_axis="t").read_text())["features"]
    assert [(f["geometry"]["plane"], f["properties"]["measurements"]["area"]) for f in features] == [
        ({"c": -1, "z": 0, "t": 0}, 1.0), ({"c": -1, "z": 0, "t": 1}, 2.0), ({"c": -1, "z": 0, "t": 1}, 3.0),
        ({"c": -1, "z": 0, "t": 2}, 4.0)]
    hole_object = features[2]
    assert len(hole_object["geometry"]["coordinates"]) == 2
    assert np.array_equal(feature_mask(hole_object, stack.shape[1:]), stack[1] == 2)


def test_empty_labels_give_an_empty_collection(tmp_path):
    path = write_geojson(tmp_path / "e.geojson", np.zeros((4, 4), np.uint16))
    assert json.loads(path.read_text()) == {"type": "FeatureCollection", "features": []}


def test_bad_inputs_are_one_clear_line(tmp_path):
    with pytest.raises(ValueError, match="'slice'"):
        write_geojson(tmp_path / "x.geojson", stack_labels(), measurements={"label": [1]})
    with pytest.raises(ValueError, match="stack_axis"):
        write_geojson(tmp_path / "x.geojson", stack_labels(), stack_axis="c")
    target = tmp_path / "x.geojson"
    target.write_text("mine")
    with pytest.raises(FileExistsError):
        write_geojson(target, awkward_labels())
    assert target.read_text() == "mine"


def test_provenance_is_a_foreign_member_of_a_still_valid_collection(tmp_path):
    record = provenance_record()
    data = json.loads(write_geojson(tmp_path / "p.geojson", stack_labels(), provenance=record).read_text())
    assert data["napari_unet_seg"] == {"provenance": record}
    # RFC 7946: the collection keeps its type and features; the extra member uses no name GeoJSON reserves
    assert data["type"] == "FeatureCollection" and len(data["features"]) == 4
    reserved = {"type", "features", "bbox", "geometry", "properties", "coordinates", "geometries", "id", "crs"}
    assert set(data) - {"type", "features"} == {"napari_unet_seg"} and "napari_unet_seg" not in reserved
    assert all(f["type"] == "Feature" and set(f) == {"type", "geometry", "properties"} for f in data["features"])
    assert "napari_unet_seg" not in json.loads(write_geojson(tmp_path / "n.geojson", stack_labels()).read_text())
