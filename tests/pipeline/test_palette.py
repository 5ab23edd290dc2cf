import json

from tests.helpers import convert_local, solid


def test_dominant_colours_with_their_shares(tmp_path, settings):
    image = solid(300, 200, [200, 30, 30]).join(solid(100, 200, [20, 60, 220]), "horizontal")
    src = tmp_path / "two.png"
    image.pngsave(str(src))
    conversion = convert_local(src, tmp_path / "out", settings)
    palette = json.loads((tmp_path / "out" / "metadata" / "img.json").read_text())["palette"]
    assert palette == list(conversion.palette)
    top = palette[0]
    red, green, blue = (int(top["hex"][i : i + 2], 16) for i in (1, 3, 5))
    assert red > 170 and green < 70 and blue < 70 and 0.65 <= top["share"] <= 0.85
    second = palette[1]
    assert int(second["hex"][5:7], 16) > 180 and 0.15 <= second["share"] <= 0.35
    assert abs(sum(c["share"] for c in palette) - 1) < 0.05
