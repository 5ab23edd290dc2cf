"""IIIF Presentation 3 manifests: valid against the official schema, labelled from the embedded metadata."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.helpers import SHARED, convert_local, exiftool_write, photo

SCHEMA = SHARED / "iiif-presentation-schema" / "iiif_3_0.json"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def validator():
    if not SCHEMA.exists():
        pytest.skip(f"the IIIF Presentation 3 schema is not at {SCHEMA} (../shared is absent)")
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def _manifest(tmp_path, settings, *tags, name="harbour.jpg", size=(1500, 1000)):
    src = tmp_path / name
    photo(*size).jpegsave(str(src))
    if tags:
        exiftool_write(src, *tags)
    convert_local(src, tmp_path / "out", settings, "coll/harbour")
    return json.loads((tmp_path / "out" / "tiles" / "coll/harbour/manifest.json").read_text())


def _assert_valid(validator, manifest):
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.path))
    assert errors == [], [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_manifest_is_valid_and_paints_the_image_service(tmp_path, settings, validator):
    manifest = _manifest(tmp_path, settings)
    _assert_valid(validator, manifest)
    base = "http://tiles.example.org/coll/harbour"
    assert manifest["@context"] == "http://iiif.io/api/presentation/3/context.json"
    assert manifest["id"] == f"{base}/manifest.json" and manifest["type"] == "Manifest"
    assert manifest["label"] == {"none": ["harbour"]}  # the file name when nothing better is embedded
    (canvas,) = manifest["items"]
    assert (canvas["width"], canvas["height"]) == (1500, 1000)
    annotation = canvas["items"][0]["items"][0]
    assert annotation["motivation"] == "painting" and annotation["target"] == canvas["id"]
    assert annotation["body"]["id"] == f"{base}/full/max/0/default.jpg"
    assert annotation["body"]["service"] == [{"id": base, "type": "ImageService3", "profile": "level0"}]
    thumbnail = manifest["thumbnail"][0]["id"]
    assert (tmp_path / "out" / "tiles" / thumbnail.removeprefix("http://tiles.example.org/")).exists()


def test_label_summary_metadata_and_rights_come_from_the_embedded_metadata(tmp_path, settings, validator):
    manifest = _manifest(
        tmp_path,
        settings,
        "-XMP-dc:Title=Harbour at dawn",
        "-XMP-dc:Description=Fishing boats",
        "-XMP-dc:Creator=A. Photographer",
        "-EXIF:Make=TestCam",
        "-EXIF:Model=T1",
        "-XMP-dc:Rights=© 2026 The Museum",
        "-XMP-cc:License=https://creativecommons.org/licenses/by/4.0/",
    )
    _assert_valid(validator, manifest)
    assert manifest["label"] == {"none": ["Harbour at dawn"]}
    assert manifest["summary"] == {"none": ["Fishing boats"]}
    assert manifest["rights"] == "http://creativecommons.org/licenses/by/4.0/"  # the spec's canonical form
    pairs = {item["label"]["none"][0]: item["value"]["none"][0] for item in manifest["metadata"]}
    assert pairs == {
        "Creator": "A. Photographer",
        "Rights": "© 2026 The Museum",
        "Camera": "TestCam T1",
        "Dimensions": "1500 x 1000 pixels",
    }


def test_a_licence_that_is_not_a_rights_uri_stays_out_of_rights(tmp_path, settings, validator):
    manifest = _manifest(tmp_path, settings, "-XMP-xmpRights:UsageTerms=Ask the archive first")
    _assert_valid(validator, manifest)
    assert "rights" not in manifest


def test_manifests_off_writes_no_manifest_and_never_imports_iiif_prezi3(tmp_path):
    """IIIF_MANIFESTS=false: the layouts and metadata as always, no manifest, and none of iiif-prezi3's import cost."""
    src = tmp_path / "harbour.jpg"
    photo(1500, 1000).jpegsave(str(src))
    script = (
        "import sys; from pathlib import Path; from app.pipeline import convert; from config import Settings; "
        "conversion = convert(Path(sys.argv[1]), Path(sys.argv[2]), Settings.from_env(), 'harbour'); "
        "print('iiif_prezi3' in sys.modules, *conversion.descriptors)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(src), str(tmp_path / "out")],
        cwd=ROOT,
        check=True,
        env={**os.environ, "IIIF_MANIFESTS": "false", "SERVING_TIFF": "false"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    imported, *descriptors = done.stdout.split()
    assert imported == "False"
    assert "harbour/info.json" in descriptors and not any(d.endswith("manifest.json") for d in descriptors)
    assert not (tmp_path / "out" / "tiles" / "harbour" / "manifest.json").exists()
    assert (tmp_path / "out" / "tiles" / "harbour" / "info.json").exists()
    assert (tmp_path / "out" / "metadata" / "harbour.json").exists()


def _prezi2_read(document):
    """The IIIF Presentation 2 library's own reader: raises on a missing required property or a wrong type.
    Its JSON-LD expansion would fetch the context over the network, so it is off."""
    from iiif_prezi import loader

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loader, "jsonld", None)
        return loader.ManifestReader(json.dumps(document)).read()


def test_presentation_2_manifest_beside_3_names_the_2_1_service(tmp_path, settings, validator):
    both = settings.with_overrides(iiif_versions=(2, 3), iiif_presentation_versions=(2, 3), iiif_max_size=1024)
    three = _manifest(tmp_path, both, "-XMP:Title=Harbour at dawn")
    _assert_valid(validator, three)
    base = "http://tiles.example.org/coll/harbour"
    body = three["items"][0]["items"][0]["items"][0]["body"]
    assert body["service"] == [
        {"id": base, "type": "ImageService3", "profile": "level0"},
        {
            "@id": "http://tiles.example.org/iiif/2/coll/harbour",
            "@type": "ImageService2",
            "profile": "http://iiif.io/api/image/2/level0.json",
        },
    ]
    tiles = tmp_path / "out" / "tiles"
    two = json.loads((tiles / "iiif/2/coll/harbour/manifest.json").read_text())
    read = _prezi2_read(two)
    assert read.toJSON(top=True)["@type"] == "sc:Manifest"
    assert two["label"] == "Harbour at dawn"
    (canvas,) = two["sequences"][0]["canvases"]
    assert (canvas["width"], canvas["height"]) == (1500, 1000)
    resource = canvas["images"][0]["resource"]
    assert resource["service"]["@id"] == "http://tiles.example.org/iiif/2/coll/harbour"
    assert (resource["width"], resource["height"]) == (750, 500)  # the largest pyramid level within 1024
    for url in (resource["@id"], two["thumbnail"]["@id"]):  # both are published 2.1 paths
        assert (tiles / url.removeprefix("http://tiles.example.org/")).is_file()
    broken = json.loads(json.dumps(two))
    del broken["sequences"][0]["canvases"][0]["height"]
    with pytest.raises(Exception, match="height"):
        _prezi2_read(broken)


def test_presentation_3_manifest_with_only_the_2_1_service(tmp_path, settings, validator):
    manifest = _manifest(tmp_path, settings.with_overrides(iiif_versions=(2,)))
    _assert_valid(validator, manifest)
    body = manifest["items"][0]["items"][0]["items"][0]["body"]
    assert [service["@type"] for service in body["service"]] == ["ImageService2"]
    for url in (body["id"], manifest["thumbnail"][0]["id"]):
        assert url.startswith("http://tiles.example.org/iiif/2/coll/harbour/")
        assert (tmp_path / "out" / "tiles" / url.removeprefix("http://tiles.example.org/")).is_file()


def test_presentation_2_needs_the_2_1_image_service(settings):
    with pytest.raises(ValueError, match="IIIF_PRESENTATION_VERSIONS"):
        settings.with_overrides(iiif_presentation_versions=(2, 3))
    with pytest.raises(ValueError, match="IIIF_VERSIONS"):
        settings.with_overrides(iiif_versions=(1,))


def test_document_manifests_paint_each_page_with_the_services_it_was_published_in(validator):
    from app.pipeline.manifest import document_manifest

    pages = [("scan/p0001", "1", 3000, 2000), ("scan/p0002", "2", 1000, 1500)]
    versions = {"scan/p0001": (3, 2), "scan/p0002": (2,)}
    manifest = document_manifest("http://t.example", "scan", "Scan", pages, 1024, versions=versions)
    _assert_valid(validator, manifest)
    first, second = (canvas["items"][0]["items"][0]["body"] for canvas in manifest["items"])
    assert [s.get("type") or s.get("@type") for s in first["service"]] == ["ImageService3", "ImageService2"]
    assert first["id"] == "http://t.example/scan/p0001/full/max/0/default.jpg"
    assert second["service"][0]["@id"] == "http://t.example/iiif/2/scan/p0002"
    assert second["id"] == "http://t.example/iiif/2/scan/p0002/full/max/0/default.jpg"
    assert manifest["thumbnail"][0]["id"] == "http://t.example/scan/p0001/full/375,250/0/default.jpg"
    only2 = document_manifest("http://t.example", "scan", "Scan", pages[1:], 1024, versions=versions)
    assert only2["thumbnail"][0]["id"] == "http://t.example/iiif/2/scan/p0002/full/250,/0/default.jpg"


def test_collection_item_manifests_paint_each_image_with_the_services_its_record_names(validator):
    from app.collection.manifests import item_manifest
    from app.collection.task import Item

    item = Item("Leaf", ("album/Leaf/a.jpg", "album/Leaf/b.jpg"))
    images = {
        "album/Leaf/a": {"facts": {"width": 1400, "height": 1000}, "iiif_versions": [3, 2]},
        "album/Leaf/b": {"facts": {"width": 1400, "height": 1000}},  # recorded before IIIF_VERSIONS: 3.0
    }
    manifest = item_manifest(
        item, "http://t.example", "http://t.example/collections/c/Leaf/manifest.json", images, 2048
    )
    _assert_valid(validator, manifest)
    first, second = (canvas["items"][0]["items"][0]["body"]["service"] for canvas in manifest["items"])
    assert [s.get("id") or s.get("@id") for s in first] == [
        "http://t.example/album/Leaf/a",
        "http://t.example/iiif/2/album/Leaf/a",
    ]
    assert [s["id"] for s in second] == ["http://t.example/album/Leaf/b"]
