"""The cataloguers' spreadsheet: any column to the manifest, by header or mapping; every bad cell a clear task error."""

from __future__ import annotations

import codecs
import json

import pytest

from app.collection import manifests, spreadsheet
from app.collection.plan import described
from app.collection.task import TaskError, group_items, parse_task
from app.events import handle_s3_event
from tests.helpers import photo
from tests.test_collections import _validator

KEYS = ["c/Box1/Box1_001.jpg", "c/Box1/Box1_002.jpg", "c/Box1/Box1_003.jpg", "c/Box2/cover.jpg"]
CATALOGUE = (
    "Identifier,Title [en],Title [fr],Description,Creator,Subject,Date,navDate,Rights,Attribution,Behavior,"
    "Viewing Direction,Provider,Provider Homepage,Provider Logo,Homepage,See Also,Thumbnail,Start,Page Labels\n"
    'Box1,Letters,Lettres,"Correspondence, 1970s",Jane Doe|John Roe,Design|Women,circa 1975,1975-06,'
    "https://rightsstatements.org/page/InC/1.0/?language=en,Courtesy of Special Collections,paged,right-to-left,"
    "University Libraries,https://lib.example.edu/,https://lib.example.edu/logo.png,"
    "https://lib.example.edu/items/box1,https://lib.example.edu/items/box1.xml,Box1_002.jpg,2,f. {number}\n"
    "Box2,Cover,,,,,,,http://creativecommons.org/licenses/by/4.0/,,,,,,,,,,,\n"
)


def _items(keys=KEYS):
    return group_items(parse_task({"collection": "c", "source_prefix": "c/"}), keys)


def _manifest(item):
    pages = [{**page, "width": 300 + n, "height": 200} for n, page in enumerate(item["pages"])]
    url = f"https://tiles.example.org/collections/c/{item['identifier']}/manifest.json"
    return manifests.item_manifest({**item, "pages": pages}, "https://tiles.example.org", url, 2048)


def test_every_column_reaches_the_manifest_and_it_validates():
    box1, box2 = described(_items(), CATALOGUE, None, None, None)
    manifest = _manifest(box1)
    assert list(_validator().iter_errors(manifest)) == []
    assert manifest["label"] == {"en": ["Letters"], "fr": ["Lettres"]}
    assert manifest["summary"] == {"none": ["Correspondence, 1970s"]}
    assert manifest["metadata"] == [
        {"label": {"none": ["Creator"]}, "value": {"none": ["Jane Doe", "John Roe"]}},
        {"label": {"none": ["Subject"]}, "value": {"none": ["Design", "Women"]}},
        {"label": {"none": ["Date"]}, "value": {"none": ["circa 1975"]}},
    ]
    assert manifest["rights"] == "http://rightsstatements.org/vocab/InC/1.0/"
    assert manifest["requiredStatement"]["value"] == {"none": ["Courtesy of Special Collections"]}
    assert manifest["navDate"] == "1975-06-01T00:00:00Z"
    assert (manifest["behavior"], manifest["viewingDirection"]) == (["paged"], "right-to-left")
    (provider,) = manifest["provider"]
    assert provider["label"] == {"none": ["University Libraries"]} and provider["id"] == "https://lib.example.edu/"
    assert provider["logo"][0] == {"id": "https://lib.example.edu/logo.png", "type": "Image", "format": "image/png"}
    assert manifest["homepage"][0]["id"] == "https://lib.example.edu/items/box1"
    assert manifest["seeAlso"] == [{"id": "https://lib.example.edu/items/box1.xml", "type": "Dataset",
                                    "format": "text/xml"}]  # fmt: skip
    assert "/Box1/Box1_002/full/" in manifest["thumbnail"][0]["id"]
    assert manifest["start"] == {"id": manifest["items"][1]["id"], "type": "Canvas"}
    assert [canvas["label"] for canvas in manifest["items"]] == [{"none": [f"f. {n}"]} for n in (1, 2, 3)]
    plain = _manifest(box2)
    assert list(_validator().iter_errors(plain)) == []
    assert plain["rights"] == "http://creativecommons.org/licenses/by/4.0/" and "metadata" not in plain


def test_a_mapping_names_what_each_column_is():
    mapping = {
        "separator": ";",
        "columns": {
            "Ref": "identifier",
            "Titre": {"to": "label", "language": "fr"},
            "Sujets": {"to": "metadata", "label": "Subjects", "language": "fr"},
            "Notes internes": "ignore",
            "Sens": "viewingDirection",
        },
    }
    text = "Ref,Titre,Sujets,Notes internes,Sens\nBox1,Lettres,Design; Femmes,do not publish,right-to-left\n"
    (box1, _) = described(_items(), text, mapping, None, None)
    assert box1["properties"] == {
        "label": {"fr": ["Lettres"]},
        "metadata": [{"label": {"none": ["Subjects"]}, "value": {"fr": ["Design", "Femmes"]}}],
        "viewingDirection": "right-to-left",
    }


def test_page_labels_from_a_second_csv_or_a_pattern():
    labels = "identifier,file,label\nBox1,Box1_001.jpg,Front cover\nBox1,3,Back cover\n"
    (box1, box2) = described(_items(), None, None, labels, "p. {n}")
    assert [page["label"] for page in box1["pages"]] == ["Front cover", "p. 2", "Back cover"]
    assert [page["label"] for page in box2["pages"]] == ["p. 1"]


@pytest.mark.parametrize(
    "text,mapping,reason",
    [
        ("identifier,Mystery\nBox1,x\n", {"columns": {"identifier": "identifier"}}, "'Mystery' is not in the mapping"),
        ("identifier,navDate\nBox1,1975-13-01\n", None, "line 2, column 'navDate': '1975-13-01' is not a date"),
        ("identifier,navDate\nBox1,circa 1975\n", None, "is not a date"),
        ("identifier,rights\nBox1,All rights reserved\n", None, "not one rightsstatements.org or Creative Commons"),
        ("identifier,rights\nBox1,http://example.org/licence\n", None, "not one rightsstatements.org"),
        ("identifier,title\nBox1,a\nBox2,b\nBox1,c\n", None, "lines 2 and 4 both describe identifier 'Box1'"),
        ("identifier,behavior\nBox1,book\n", None, "behavior 'book' is not one of"),
        ("identifier,viewing direction\nBox1,backwards\n", None, "viewing direction must be one of"),
        ("identifier,homepage\nBox1,javascript:alert(1)\n", None, "not an http(s) URL"),
        ("identifier,provider logo\nBox1,https://x.org/l.png\n", None, "needs the provider's name"),
        ("identifier,thumbnail\nBox1,Box9_001.jpg\n", None, "neither a file of the item"),
        ("identifier,page labels\nBox1,p. {page}\n", None, "may use only {n}"),
        ("identifier,,title\nBox1,x,y\n", None, "column 2 has no header"),
        ("title\nLetters\n", None, "must name an identifier column"),
        ("identifier,title\n,x\n", None, "the identifier is empty"),
    ],
)
def test_bad_cells_fail_the_task_with_line_and_column(text, mapping, reason):
    with pytest.raises(TaskError, match=reason.replace("(", r"\(").replace(")", r"\)").replace("{", r"\{")):
        described(_items(), text, mapping, None, None)


def test_rights_and_dates_in_the_forms_cataloguers_write():
    assert spreadsheet.rights_uri("https://creativecommons.org/licenses/by-nc-sa/4.0/deed.en") == (
        "http://creativecommons.org/licenses/by-nc-sa/4.0/"
    )
    assert spreadsheet.rights_uri("http://creativecommons.org/publicdomain/zero/1.0/") == (
        "http://creativecommons.org/publicdomain/zero/1.0/"
    )
    assert spreadsheet.rights_uri("http://rightsstatements.org/vocab/NoC-US/1.0/") == (
        "http://rightsstatements.org/vocab/NoC-US/1.0/"
    )
    assert spreadsheet.rights_uri("http://rightsstatements.org/vocab/Free/1.0/") is None
    assert spreadsheet.nav_date("1975") == "1975-01-01T00:00:00Z"
    assert spreadsheet.nav_date("1975-06-30T10:00:00+02:00") == "1975-06-30T08:00:00Z"
    assert spreadsheet.nav_date("1975-02-30") is None


def test_utf16_is_read_and_latin1_is_refused_with_where():
    text = "identifier,title\nBox1,Café\n"
    assert spreadsheet.decode(codecs.BOM_UTF16_LE + text.encode("utf-16-le"), "the CSV") == text
    assert spreadsheet.decode(text.replace(",", "\t").encode("utf-16"), "the CSV").startswith("identifier\t")
    (box1, _) = described(_items(), spreadsheet.decode(text.replace(",", "\t").encode("utf-16"), "x"), *[None] * 3)
    assert box1["properties"]["label"] == {"none": ["Café"]}
    with pytest.raises(TaskError, match=r"not UTF-8 \(line 2 has byte 0xe9; Latin-1"):
        spreadsheet.decode(text.encode("latin-1"), "the CSV")


# Through the endpoint: a bad spreadsheet fails the task and publishes nothing -------------------------------


def _run(cloud, files: dict[str, bytes], **fields) -> dict:
    cloud.upload("c/Box1/Box1_001.jpg", photo(64, 48))
    for key, body in files.items():
        cloud.upload(key, body)
    cloud.events()
    cloud.upload("tasks/c.json", json.dumps({"collection": "c", "source_prefix": "c/", **fields}).encode())
    while pending := cloud.events():
        for event in pending:
            handle_s3_event(event)
    return json.loads(cloud.read(cloud.settings.metadata_bucket, "collections/c.json"))


@pytest.mark.parametrize(
    "files,fields,reason",
    [
        ({"c/items.csv": "identifier,title\nBox1,Café\n".encode("latin-1")}, {"csv": "c/items.csv"}, "not UTF-8"),
        ({"c/items.csv": b"identifier,rights\nBox1,CC-BY\n"}, {"csv": "c/items.csv"}, "'CC-BY' is not one"),
        ({"c/items.csv": b"identifier,navDate\nBox1,tomorrow\n"}, {"csv": "c/items.csv"}, "is not a date"),
        ({"c/items.csv": b"identifier\nBox1\nBox1\n"}, {"csv": "c/items.csv"}, "both describe identifier"),
        (
            {"c/items.csv": b"identifier,Extra\nBox1,x\n", "c/map.json": b'{"columns": {"identifier": "identifier"}}'},
            {"csv": "c/items.csv", "mapping": "c/map.json"},
            "'Extra' is not in the mapping",
        ),
        (
            {"c/items.csv": b"identifier\nBox1\n", "c/map.json": b"{not json"},
            {"csv": "c/items.csv", "mapping": "c/map.json"},
            "mapping is not valid JSON",
        ),
        (
            {"c/items.csv": b"identifier,title\n" + b"Box1," + b"x" * (50 * 2**20) + b"\n"},
            {"csv": "c/items.csv"},
            "is 50.0 MB, over the 25 MB limit",
        ),  # fmt: skip
    ],
)
def test_a_bad_spreadsheet_fails_the_task_and_publishes_nothing(cloud, files, fields, reason):
    document = _run(cloud, files, **fields)
    assert document["status"] == "failed" and reason in document["error"]
    assert not cloud.tiles("collections/")
    assert not cloud.keys(cloud.settings.source_bucket, "collection-batches/")


def test_a_utf16_spreadsheet_from_excel_is_published(cloud):
    csv_text = "identifier\ttitle\tbehavior\nBox1\tLettres d'été\tpaged\n"
    document = _run(cloud, {"c/items.csv": csv_text.encode("utf-16")}, csv="c/items.csv")
    assert document["status"] == "done", document["error"]
    manifest = json.loads(cloud.read(cloud.settings.tiles_bucket, "collections/c/Box1/manifest.json"))
    assert manifest["label"] == {"none": ["Lettres d'été"]} and manifest["behavior"] == ["paged"]
    collection = json.loads(cloud.read(cloud.settings.tiles_bucket, "collections/c/collection.json"))
    assert list(_validator().iter_errors(manifest)) == [] and list(_validator().iter_errors(collection)) == []
