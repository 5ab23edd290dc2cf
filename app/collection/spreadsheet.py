"""The cataloguers' spreadsheet as manifest properties: any column, mapped by its header or a mapping. Pure: no S3.

One row per item, named by its ``identifier`` (the item's folder). Each other
column is mapped to a manifest property by its header (``TARGETS``; case,
spaces, ``_``, ``-`` and ``.`` ignored) or by the task's mapping, and every
column neither names is a ``metadata`` pair labelled with its header. A header
may end in a language, ``Title [en]``; cells hold several values with the
separator (``|`` unless the mapping says otherwise). Values are checked as the
IIIF Presentation 3 specification requires (rights URIs, navDate, behaviors,
viewing directions, http(s) links) and any bad cell fails the whole task with
its line and column, before anything is published.

The result per item is a plain JSON dict of IIIF-shaped properties (``label``,
``summary``, ``metadata``, ``rights``, ``requiredStatement``, ``navDate``,
``behavior``, ``viewingDirection``, ``provider``, ``homepage``, ``seeAlso``)
plus three page selectors resolved later against the item's images:
``thumbnail``, ``start`` (a file name or a page number) and ``pageLabels`` (a
pattern, see ``page_labels``).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from app.collection.task import TaskError

MAX_CSV_BYTES = 25 * 2**20  # a 200,000-page collection's CSVs fit; anything larger is split into several tasks
SEPARATOR = "|"
TARGETS = {  # what a header (normalised) maps to without a mapping
    "identifier": "identifier",
    "id": "identifier",
    "title": "label",
    "label": "label",
    "description": "summary",
    "summary": "summary",
    "rights": "rights",
    "license": "rights",
    "licence": "rights",
    "attribution": "requiredStatement",
    "requiredstatement": "requiredStatement",
    "navdate": "navDate",
    "behavior": "behavior",
    "behaviour": "behavior",
    "viewingdirection": "viewingDirection",
    "provider": "provider",
    "providerhomepage": "provider.homepage",
    "providerlogo": "provider.logo",
    "homepage": "homepage",
    "seealso": "seeAlso",
    "thumbnail": "thumbnail",
    "start": "start",
    "startcanvas": "start",
    "pagelabels": "pageLabels",
    "pagelabel": "pageLabels",
}
KNOWN = frozenset(TARGETS.values()) | {"metadata", "ignore"}
BEHAVIORS = frozenset({"paged", "individuals", "continuous", "unordered", "auto-advance", "no-auto-advance"})
DIRECTIONS = frozenset({"left-to-right", "right-to-left", "top-to-bottom", "bottom-to-top"})
_RIGHTS_STATEMENTS = r"InC|InC-OW-EU|InC-EDU|InC-NC|InC-RUU|NoC-CR|NoC-NC|NoC-OKLR|NoC-US|CNE|UND|NKC"
_RIGHTS = (
    re.compile(rf"https?://rightsstatements\.org/(?:vocab|page)/(?P<rs>{_RIGHTS_STATEMENTS})/1\.0/?(?:\?.*)?"),
    re.compile(
        r"https?://creativecommons\.org/(?P<cc>licenses/by(?:-nc)?(?:-sa|-nd)?/\d\.\d(?:/[a-z]{2})?"
        r"|publicdomain/(?:zero|mark)/1\.0)/?(?:(?:deed|legalcode)(?:\.[a-zA-Z-]+)?)?"
    ),
)
_LANGUAGE = re.compile(r"^(?P<name>.*?)\s*\[(?P<lang>[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)\]$")
_LINK = re.compile(r"https?://[^\s<>\"]+")
_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
PATTERN_FIELDS = frozenset({"n", "number", "name"})


def decode(data: bytes, name: str) -> str:
    """UTF-8 (with or without a BOM), or UTF-16 with its BOM as Excel's "Unicode Text" writes; anything else
    (Latin-1, Windows-1252, Mac Roman) is refused with where the first undecodable byte is."""
    if len(data) > MAX_CSV_BYTES:
        raise TaskError(f"{name} is {len(data) / 2**20:.1f} MB, over the {MAX_CSV_BYTES // 2**20} MB limit")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise TaskError(f"{name} starts as UTF-16 but byte {error.start} is not UTF-16") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise TaskError(
            f"{name} is not UTF-8 (line {line} has byte 0x{data[error.start]:02x}; Latin-1 or Windows-1252?): "
            "save it as 'CSV UTF-8'"
        ) from None


def rows_of(text: str, name: str) -> list[list[str]]:
    """Every row, comma-separated (tab-separated if the header has tabs and no commas)."""
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    try:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=delimiter, strict=True))
    except csv.Error as error:
        raise TaskError(f"{name} is malformed: {error}") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise TaskError(f"{name} is empty")
    return rows


def parse_mapping(document: Any) -> tuple[dict[str, dict[str, Any]], str]:
    """A mapping file's columns and separator: ``{"separator": ";", "columns": {"Header": "target" or
    {"to": target, "label": ..., "language": ...}}}``."""
    if not isinstance(document, dict) or not isinstance(document.get("columns", {}), dict):
        raise TaskError('the mapping must be a JSON object with "columns": {"Header": "target", ...}')
    separator = document.get("separator", SEPARATOR)
    if not isinstance(separator, str) or not 1 <= len(separator) <= 3 or separator.isspace():
        raise TaskError("the mapping's separator must be 1 to 3 characters, not blank")
    columns = {}
    for header, rule in document.get("columns", {}).items():
        rule = {"to": rule} if isinstance(rule, str) else rule
        if not isinstance(rule, dict) or rule.get("to") not in KNOWN:
            raise TaskError(f"mapping of column {header!r}: 'to' must be one of {', '.join(sorted(KNOWN))}")
        for key in ("label", "language"):
            if rule.get(key) is not None and not isinstance(rule[key], str):
                raise TaskError(f"mapping of column {header!r}: {key} must be a string")
        columns[header.strip()] = rule
    return columns, separator


def describe(
    text: str, identifiers: set[str], mapping: dict[str, dict[str, Any]] | None = None, separator: str = SEPARATOR
) -> dict[str, dict[str, Any]]:
    """Each named item's properties from the CSV ``text``; every cell checked, any fault a TaskError."""
    rows = rows_of(text, "the CSV")
    header = [cell.strip() for cell in rows[0]]
    columns = [_column(name, position, mapping) for position, name in enumerate(header, start=1)]
    if not any(column["to"] == "identifier" for column in columns):
        raise TaskError(f"the CSV header must name an identifier column (found: {', '.join(header)})")
    unused = set(mapping or ()) - set(header)
    if unused:
        raise TaskError(f"the mapping names columns the CSV does not have: {', '.join(sorted(unused))}")
    described: dict[str, dict[str, Any]] = {}
    lines: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise TaskError(f"CSV line {number} has {len(row)} fields, the header has {len(header)}")
        properties, identifier = _row(columns, row, number, separator)
        if identifier in lines:
            raise TaskError(f"CSV lines {lines[identifier]} and {number} both describe identifier {identifier!r}")
        if identifier not in identifiers:
            shown = ", ".join(sorted(identifiers)[:10]) + (" ..." if len(identifiers) > 10 else "")
            raise TaskError(f"CSV line {number} names identifier {identifier!r}, which has no images (items: {shown})")
        lines[identifier] = number
        described[identifier] = properties
    return described


def page_labels_csv(text: str, items: dict[str, tuple[str, ...]]) -> dict[str, dict[str, str]]:
    """Per-page labels from a second CSV, ``identifier,file,label`` (``file``: the image's file name, or ``page``:
    its position): {identifier: {key: label}}."""
    rows = rows_of(text, "the page labels CSV")
    header = [cell.strip().lower() for cell in rows[0]]
    wanted = ("identifier", "label")
    if not all(name in header for name in wanted) or not ("file" in header or "page" in header):
        raise TaskError(f"the page labels CSV needs identifier, file (or page) and label columns, not {rows[0]}")
    at = {name: header.index(name) for name in ("identifier", "file", "page", "label") if name in header}
    labels: dict[str, dict[str, str]] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise TaskError(f"page labels CSV line {number} has {len(row)} fields, the header has {len(header)}")
        identifier, label = row[at["identifier"]].strip(), row[at["label"]].strip()
        keys = items.get(identifier)
        if keys is None:
            raise TaskError(f"page labels CSV line {number}: identifier {identifier!r} has no images")
        selector = row[at["file"]].strip() if "file" in at else row[at["page"]].strip()
        key = select_page(keys, selector, f"page labels CSV line {number}")
        if not label:
            raise TaskError(f"page labels CSV line {number}: the label is empty")
        labels.setdefault(identifier, {})[key] = label
    return labels


def select_page(keys: tuple[str, ...], selector: str, where: str) -> str:
    """The image a selector names: its file name (with or without extension) or its page number (1-based)."""
    if selector.isdigit() and 1 <= int(selector) <= len(keys):
        return keys[int(selector) - 1]
    for key in keys:
        path = PurePosixPath(key)
        if selector in (path.name, path.stem):
            return key
    raise TaskError(f"{where}: {selector!r} is neither a file of the item nor a page number from 1 to {len(keys)}")


def check_pattern(pattern: str, where: str) -> str:
    """A page label pattern: text with {n} (position), {number} (the number ending the file name) or {name}."""
    unknown = set(_PLACEHOLDER.findall(pattern)) - PATTERN_FIELDS
    if unknown or not pattern.strip() or pattern.count("{") != pattern.count("}"):
        raise TaskError(f"{where}: page label pattern {pattern!r} may use only {{n}}, {{number}} and {{name}}")
    return pattern


def label_from_pattern(pattern: str, key: str, position: int) -> str:
    stem = PurePosixPath(key).stem
    last = stem.split("_")[-1]
    values = {"n": str(position), "number": str(int(last)) if last.isdigit() else str(position), "name": stem}
    return _PLACEHOLDER.sub(lambda found: values[found.group(1)], pattern)


def rights_uri(value: str) -> str | None:
    """The canonical form (http, trailing slash) of a rightsstatements.org or Creative Commons URI, else None."""
    for form in _RIGHTS:
        found = form.fullmatch(value.strip())
        if found and found.group(1):
            return (
                f"http://rightsstatements.org/vocab/{found['rs']}/1.0/"
                if "rs" in found.groupdict()
                else f"http://creativecommons.org/{found['cc']}/"
            )
    return None


def nav_date(value: str) -> str | None:
    """An ISO 8601 year, month, day or date-time as the xsd:dateTime navDate needs, in UTC; None if not a date."""
    value = value.strip()
    if not _DATE.fullmatch(value):
        return None
    try:
        if len(value) <= 10:
            year, month, day = ([int(part) for part in value.split("-")] + [1, 1])[:3]
            stamp = datetime(year, month, day, tzinfo=UTC)
        else:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
            stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    except ValueError:
        return None
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _column(header: str, position: int, mapping: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    if not header:
        raise TaskError(f"CSV column {position} has no header")
    found = _LANGUAGE.match(header)
    name, language = (found["name"], found["lang"].lower()) if found else (header, None)
    if mapping is not None:
        rule = mapping.get(header)
        if rule is None:
            raise TaskError(f"CSV column {header!r} is not in the mapping: map it, or map it to 'ignore'")
        return {
            "header": header,
            "to": rule["to"],
            "label": rule.get("label") or name,
            "language": rule.get("language") or language,
        }
    target = TARGETS.get(re.sub(r"[\s_.\-]", "", name.lower()), "metadata")
    return {"header": header, "to": target, "label": name, "language": language}


def _row(columns: list[dict[str, Any]], row: list[str], number: int, separator: str) -> tuple[dict[str, Any], str]:
    properties: dict[str, Any] = {}
    identifier = None
    metadata: dict[str, dict[str, list[str]]] = {}
    for column, cell in zip(columns, row, strict=True):
        value, target, where = cell.strip(), column["to"], f"CSV line {number}, column {column['header']!r}"
        if target == "ignore" or (not value and target != "identifier"):
            continue
        language = column["language"] or "none"
        values = [part.strip() for part in value.split(separator) if part.strip()]
        if target == "identifier":
            if not value:
                raise TaskError(f"{where}: the identifier is empty")
            identifier = value
        elif target in ("label", "summary"):
            properties.setdefault(target, {}).setdefault(language, []).extend(values)
        elif target == "requiredStatement":
            statement = properties.setdefault("requiredStatement", {"label": {"none": ["Attribution"]}, "value": {}})
            statement["value"].setdefault(language, []).extend(values)
        elif target == "metadata":
            metadata.setdefault(column["label"], {}).setdefault(language, []).extend(values)
        else:
            _set(properties, target, values, where)
    properties["metadata"] = [{"label": {"none": [label]}, "value": value} for label, value in metadata.items()]
    if "provider" not in properties and any(k in properties for k in ("_provider.homepage", "_provider.logo")):
        raise TaskError(f"CSV line {number}: a provider homepage or logo needs the provider's name")
    if "provider" in properties:
        agent = properties["provider"][0]
        for part in ("homepage", "logo"):
            agent.update(properties.pop(f"_provider.{part}", {}))
    return properties, identifier


def _set(properties: dict[str, Any], target: str, values: list[str], where: str) -> None:
    """A single-valued or link property, checked."""
    if target == "rights":
        uri = rights_uri(values[0]) if len(values) == 1 else None
        if uri is None:
            raise TaskError(
                f"{where}: {values[0] if values else ''!r} is not one rightsstatements.org or Creative Commons URI "
                "(e.g. http://rightsstatements.org/vocab/InC/1.0/); free text goes in an attribution column"
            )
        properties["rights"] = uri
    elif target == "navDate":
        date = nav_date(values[0]) if len(values) == 1 else None
        if date is None:
            raise TaskError(f"{where}: {values[0]!r} is not a date (YYYY, YYYY-MM, YYYY-MM-DD or an ISO 8601 time)")
        properties["navDate"] = date
    elif target == "behavior":
        wrong = [value for value in values if value.lower() not in BEHAVIORS]
        if wrong:
            raise TaskError(f"{where}: behavior {wrong[0]!r} is not one of {', '.join(sorted(BEHAVIORS))}")
        properties["behavior"] = [value.lower() for value in values]
    elif target == "viewingDirection":
        if len(values) != 1 or values[0].lower() not in DIRECTIONS:
            raise TaskError(f"{where}: viewing direction must be one of {', '.join(sorted(DIRECTIONS))}")
        properties["viewingDirection"] = values[0].lower()
    elif target == "provider":
        properties["provider"] = [{"type": "Agent", "label": {"none": values}}]
    elif target in ("provider.homepage", "provider.logo", "homepage", "seeAlso"):
        links = [_link(value, where) for value in values]
        if target == "provider.homepage":
            properties["_provider.homepage"] = {"homepage": [_text_link(links[0])], "id": links[0]}
        elif target == "provider.logo":
            properties["_provider.logo"] = {"logo": [{"id": links[0], "type": "Image", "format": _format(links[0])}]}
        elif target == "homepage":
            properties["homepage"] = [_text_link(link) for link in links]
        else:
            properties["seeAlso"] = [{"id": link, "type": "Dataset", "format": _format(link)} for link in links]
    elif target in ("thumbnail", "start"):
        properties[target] = values[0]
    elif target == "pageLabels":
        properties["pageLabels"] = check_pattern(values[0], where)


def _link(value: str, where: str) -> str:
    if not _LINK.fullmatch(value):
        raise TaskError(f"{where}: {value!r} is not an http(s) URL")
    return value


def _text_link(url: str) -> dict[str, Any]:
    return {"id": url, "type": "Text", "label": {"none": [url]}, "format": "text/html"}


def _format(url: str) -> str:
    suffix = PurePosixPath(url.split("?", 1)[0]).suffix.lower()
    return {
        ".json": "application/json",
        ".jsonld": "application/ld+json",
        ".xml": "text/xml",
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".svg": "image/svg+xml",
        ".gif": "image/gif",
        ".txt": "text/plain",
        ".csv": "text/csv",
    }.get(suffix, "text/html")
