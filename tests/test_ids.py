import pytest

from app.ids import image_id_for, is_valid_id


@pytest.mark.parametrize(
    "key,expected",
    [
        ("photo.jpg", "photo"),
        ("maps/sheet 12.tif", "maps/sheet_12"),
        ("a b+c (é).tif", "a_b_c____"),
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
