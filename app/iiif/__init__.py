"""The IIIF Image API's rules, pure: no pixels, no S3, no Flask.

``grid`` is the tile pyramid's arithmetic (levels, tiles, scale factors,
sizes), ``paths`` the one builder of canonical paths for both levels,
``request`` the level-2 URL grammar and its resolution into a plan, ``info``
both levels' ``info.json`` (each in Image API 3.0 and 2.1), ``serving`` the contract of the pyramidal TIFF the
dynamic endpoint reads. The pipeline and the web layer import these; they
import nothing of either.
"""
