"""Property-based: whatever region/size/rotation/quality.format a client sends, the answer is never a 500.

The strategies follow the IIIF grammar (valid forms with numbers of any size)
and stray from it (characters, signs, exponents, junk), so most examples are
near-misses of valid requests. Examples are bounded and derandomized so the
suite is quick and the same on every run; there is no deadline, because a
2-core CI machine's timing is not what is under test.
"""

from urllib.parse import quote

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.iiif.request import QUALITIES, Limits, RequestError, parse, plan
from tests.helpers import photo

QUICK = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ALLOWED = {200, 400, 403, 404, 501}
LIMITS = Limits(1000, 800, 500_000)


def mostly(valid, stray):
    """``valid`` seven times in eight, else ``stray``: most examples are near-misses of valid requests."""
    return st.sampled_from(range(8)).flatmap(lambda n: stray if n == 7 else valid)


JUNK = st.text(st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), min_size=1, max_size=12)
NUMBER = mostly(
    st.one_of(
        st.integers(0, 1200).map(str),
        st.floats(0, 150, allow_nan=False).map(lambda v: f"{v:.3f}".rstrip("0")),
        st.integers(0, 10**12).map(str),
    ),
    st.text("0123456789.-+e_", min_size=1, max_size=6),
)
PIXELS = mostly(st.integers(0, 600).map(str), NUMBER)
REGION = mostly(
    st.one_of(
        st.sampled_from(["full", "square"]),
        st.lists(PIXELS, min_size=4, max_size=4).map(",".join),
        st.lists(NUMBER, min_size=4, max_size=4).map(lambda values: "pct:" + ",".join(values)),
    ),
    JUNK,
)
SIZE = mostly(
    st.tuples(
        st.sampled_from(["", "^"]),
        st.one_of(
            st.sampled_from(["max", "full"]),
            PIXELS.map(lambda n: f"{n},"),
            PIXELS.map(lambda n: f",{n}"),
            NUMBER.map(lambda n: f"pct:{n}"),
            st.tuples(st.sampled_from(["", "!"]), PIXELS, PIXELS).map(lambda t: f"{t[0]}{t[1]},{t[2]}"),
        ),
    ).map("".join),
    JUNK,
)
ROTATION = mostly(
    st.tuples(st.sampled_from(["", "!"]), st.one_of(st.sampled_from(["0", "90", "180", "270", "360"]), NUMBER)).map(
        "".join
    ),
    JUNK,
)
QUALITY = mostly(st.sampled_from(QUALITIES), st.one_of(st.sampled_from(["grey", "native", "Default"]), JUNK))
FORMAT = mostly(st.sampled_from(["jpg", "png", "webp", "tif"]), st.one_of(st.sampled_from(["gif", "jp2", "pdf"]), JUNK))
IDENTIFIER = mostly(st.just("img"), st.sampled_from(["missing", "..", "img/..", "img%2F..%2F..", "x" * 600]))


@QUICK
@given(image_id=IDENTIFIER, region=REGION, size=SIZE, rotation=ROTATION, quality=QUALITY, fmt=FORMAT)
def test_every_request_gets_an_iiif_status_never_a_server_error(served, image_id, region, size, rotation, quality, fmt):
    client = _client(served)
    path = "/".join(quote(part, safe="") for part in (region, size, rotation, quality)) + "." + quote(fmt, safe="")
    response = client.get(f"/iiif/3/{image_id}/{path}")
    event(f"status {response.status_code}")
    assert response.status_code in ALLOWED, (path, response.status_code, response.get_data(as_text=True)[:200])
    if response.status_code == 200:
        assert response.headers["Content-Type"].startswith("image/") and response.data
        assert 'rel="canonical"' in response.headers["Link"]
    else:
        assert len(response.data) < 200


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(region=REGION, size=SIZE, rotation=ROTATION, quality=QUALITY, fmt=FORMAT)
def test_plans_respect_the_limits_and_their_canonical_form_is_a_fixed_point(region, size, rotation, quality, fmt):
    try:
        wanted = plan(parse(region, size, rotation, quality, fmt), 1200, 700, LIMITS)
    except RequestError as error:
        assert error.status in ALLOWED
        return
    x, y, w, h = wanted.region
    assert 0 <= x < 1200 and 0 <= y < 700 and 0 < w <= 1200 - x and 0 < h <= 700 - y
    _within_limits_and_a_fixed_point(wanted, version=3)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(region=REGION, size=SIZE, rotation=ROTATION, quality=QUALITY, fmt=FORMAT)
def test_2_1_plans_respect_the_limits_and_their_canonical_form_is_a_fixed_point(region, size, rotation, quality, fmt):
    try:
        wanted = plan(parse(region, size, rotation, quality, fmt, version=2), 1200, 700, LIMITS, version=2)
    except RequestError as error:
        assert error.status in ALLOWED
        return
    assert "^" not in wanted.canonical and "max" not in wanted.canonical.split("/")[1]
    _within_limits_and_a_fixed_point(wanted, version=2)


def _within_limits_and_a_fixed_point(wanted, version):
    """The planned size is within LIMITS, and planning its canonical form again gives the same plan."""
    assert 0 < wanted.size[0] <= LIMITS.max_width and 0 < wanted.size[1] <= LIMITS.max_height
    assert wanted.size[0] * wanted.size[1] <= LIMITS.max_area
    again = plan(parse(*_split(wanted.canonical), version=version), 1200, 700, LIMITS, version=version)
    assert (again.region, again.size, again.rotation, again.mirror, again.canonical) == (
        wanted.region,
        wanted.size,
        wanted.rotation,
        wanted.mirror,
        wanted.canonical,
    )


@settings(QUICK, max_examples=75)
@given(region=REGION, size=SIZE, rotation=ROTATION, quality=QUALITY, fmt=FORMAT)
def test_every_2_1_request_gets_an_iiif_status_never_a_server_error(served, region, size, rotation, quality, fmt):
    client = _client(served)
    path = "/".join(quote(part, safe="") for part in (region, size, rotation, quality)) + "." + quote(fmt, safe="")
    response = client.get(f"/iiif/2/img/{path}")
    assert response.status_code in ALLOWED, (path, response.status_code, response.get_data(as_text=True)[:200])
    if response.status_code == 200:
        assert response.headers["Link"].startswith("<http://localhost/iiif/2/img/")


def _split(canonical: str) -> tuple[str, str, str, str, str]:
    region, size, rotation, last = canonical.split("/")
    quality, fmt = last.rsplit(".", 1)
    return region, size, rotation, quality, fmt


def _client(served):
    """One small image and one app per test (hypothesis runs the body many times with the same fixture)."""
    if not hasattr(served, "hypothesis_client"):
        served.put("img", photo(600, 400))
        served.limit(iiif_max_width=LIMITS.max_width, iiif_max_height=LIMITS.max_height, iiif_max_area=LIMITS.max_area)
        served.hypothesis_client = served.client()
    return served.hypothesis_client
