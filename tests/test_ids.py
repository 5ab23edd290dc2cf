import pytest

from app.ids import distinct_id, image_id_for, is_valid_id, key_problem


@pytest.mark.parametrize(
    "key,expected",
    [
        ("photo.jpg", "photo"),
        ("maps/sheet 12.tif", "maps/sheet_12"),
        ("../../etc/passwd", "_/_/etc/passwd"),
        ("dir/.hidden.png", "dir/hidden"),
        ("archive.tar.gz", "archive.tar"),
    ],
)
def test_ids_are_safe_and_keep_folders(key, expected):
    assert image_id_for(key) == expected
    assert is_valid_id(expected)


@pytest.mark.parametrize("bad", ["", "../x", "a//b", "/abs", "a/../b", "x\\y", "a b", ".hidden", "a" * 600])
def test_invalid_ids_are_refused(bad):
    assert not is_valid_id(bad)


@pytest.mark.parametrize(
    "keys",
    [
        ("Photo.jpg", "photo.jpg"),  # case: S3 keys are case-sensitive, so are ids
        ("日本.jpg", "中文.jpg"),  # scripts: once both were "__"
        ("日本.jpg", "RiBen.jpg"),  # a transliteration never lands on an ASCII key's id
        ("café.jpg", "cafe\u0301.jpg", "cafe.jpg"),  # NFC, NFD and ASCII: three keys, three images
        ("Москва/1.tif", "Moskva/1.tif"),
        ("a" * 600 + ".jpg", "a" * 600 + ".png", "a" * 601 + ".jpg"),  # over-long ids end in the key's hash
    ],
)
def test_no_two_keys_share_an_id_except_ascii_twins_the_job_keeps_apart(keys):
    ids = [image_id_for(key) for key in keys]
    assert len(set(ids)) == len(ids) and all(is_valid_id(i) for i in ids)


@pytest.mark.parametrize(
    "key,readable",
    [("日本.jpg", "RiBen~"), ("Москва/фото 1.tif", "Moskva/foto_1~"), ("Ελλάδα.png", "Ellada~")],
)
def test_non_latin_names_keep_readable_ids(key, readable):
    assert image_id_for(key).startswith(readable) and len(image_id_for(key)) == len(readable) + 8


@pytest.mark.parametrize("twins", [("a b.jpg", "a_b.jpg"), ("x.jpg", "x.png"), ("scan (1).tif", "scan _1_.tif")])
def test_ascii_twins_share_the_readable_id_and_each_has_a_distinct_one_for_its_refusal(twins):
    assert image_id_for(twins[0]) == image_id_for(twins[1])  # the job keeps them apart (tests/test_versions.py)
    assert distinct_id(twins[0]) != distinct_id(twins[1])
    assert all(is_valid_id(distinct_id(key)) for key in twins)


@pytest.mark.parametrize(
    "key,reason",
    [
        ("a\x01b.jpg", "control characters"),
        ("line\nbreak.jpg", "control characters"),
        ("x" * 256 + ".jpg", "over 255 bytes"),
        ("dir/" + "é" * 128 + ".jpg", "over 255 bytes"),
        ("scan_files/1/x.jpg", "named like a published tile"),
        ("img_files/11/0_0.jpg", "named like a published tile"),
        ("a/full/max/0/default.jpg", "named like a published tile"),
        ("a/0,0,512,512/512,512/0/default.jpg", "named like a published tile"),
        ("x.dzi", "named like a published tile"),
        ("a/manifest.json", "named like a published tile"),
        ("jobs/x.jpg", "the folder jobs/"),
        ("derivatives/x.tif", "the folder derivatives/"),
        ("pages/x.jpg", "holds the pages"),
        ("iiif/2/x.jpg", "IIIF Image API 2.1 services"),  # its id would sit inside the 2.1 service of "x"
    ],
)
def test_keys_that_cannot_be_published_say_why(key, reason):
    assert reason in key_problem(key)


@pytest.mark.parametrize(
    "key",
    [
        "products/default.jpg",
        "jobs.jpg",
        "a/full.jpg",
        "files_1/x.jpg",
        "pages/book/p0001@abc123.pdf",
        "é.jpg",
        "iiif/test-image.jpg",
    ],
)
def test_ordinary_keys_are_not_refused(key):
    assert key_problem(key) is None


def test_an_images_2_1_service_is_its_own_and_never_a_nested_images():
    from app import outputs

    assert "iiif/2/box/" in outputs.tile_prefixes("box")
    for key in (
        "iiif/2/box/info.json",
        "iiif/2/box/manifest.json",
        "iiif/2/box/0,0,512,512/512,/0/default.jpg",
        "iiif/2/box/full/full/0/default.jpg",
        "iiif/2/box/0,512,400,512/full/0/default.jpg",
    ):
        assert outputs.owned_tile_key("box", key), key
    for key in ("iiif/2/box/letter/info.json", "iiif/2/box/letter/full/250,/0/default.jpg", "iiif/2/box.dzi"):
        assert not outputs.owned_tile_key("box", key), key
    assert outputs.owned_tile_key("box/letter", "iiif/2/box/letter/full/250,/0/default.jpg")
