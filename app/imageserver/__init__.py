"""On-demand IIIF Image API 3.0 (level 2) from the pyramidal serving TIFF on S3.

``request`` parses and resolves the URL parameters (pure), ``render`` turns a
plan into pixels with libvips (source-agnostic), ``s3source`` feeds libvips
from S3 with ranged reads; ``app.web.iiif`` is the HTTP face.
"""
