"""Answers too big for a Lambda response: rendered once into the tiles bucket, then redirected to.

Zappa (``binary_support``) base64-encodes an image body into the JSON it hands
back to Lambda, and Lambda refuses a synchronous response above 6 MB, so API
Gateway would answer 502. Pure: sizes, no S3, no Flask (where the copies are kept is ``app.outputs``).
"""

from __future__ import annotations

import math

from app.iiif.request import Plan

LAMBDA_RESPONSE_LIMIT = 6_291_456  # bytes: Lambda's synchronous response payload, the whole JSON included
ENVELOPE_MARGIN = 256 * 1024
MAX_INLINE_BYTES = (LAMBDA_RESPONSE_LIMIT - ENVELOPE_MARGIN) // 4 * 3
"""The largest body answered inline: 4,521,984 bytes.

Base64 turns every 3 bytes into 4, so this body becomes exactly
6,291,456 - 256 KiB characters; the margin holds the JSON envelope (status,
``isBase64Encoded``) and the headers, which a REST API event gets twice
(``headers`` and ``multiValueHeaders``) and which are a few KB at most.
"""
_ENCODER_SLACK = 64 * 1024  # file headers, PNG chunks, deflate block headers


def may_exceed(plan: Plan) -> bool:
    """Whether ``plan``'s encoded answer could be larger than MAX_INLINE_BYTES (then its cache is worth a HEAD).

    An upper bound, not an estimate: libjpeg-turbo's worst case (``tjBufSize``)
    is twice the raw pixels padded to 16-pixel blocks, and PNG, deflate TIFF
    and WebP stay below that on any content.
    """
    width, height = plan.size
    if plan.rotation % 90:  # arbitrary angles answer the rotated bounding box, with an alpha band
        radians = math.radians(plan.rotation)
        cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
        width, height = math.ceil(width * cos + height * sin) + 2, math.ceil(width * sin + height * cos) + 2
    bands = (1 if plan.quality in ("gray", "bitonal") else 3) + (1 if plan.rotation % 90 else 0)
    raw = _padded(width) * _padded(height) * bands
    return 2 * raw + _ENCODER_SLACK > MAX_INLINE_BYTES


def _padded(pixels: int) -> int:
    return -(-pixels // 16) * 16
