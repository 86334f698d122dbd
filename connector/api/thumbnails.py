"""Thumbnails for the studio's image grid: cached JPEGs, answered 304 when the browser has them."""
from __future__ import annotations

from flask import Response, request

from ..context import ctx
from ..services.thumbnails import thumbnail

# The bytes behind an ETag never change (content-addressed), so browsers may keep them for a year.
CACHE_CONTROL = "private, max-age=31536000, immutable"


def get_image_thumbnail(model_id, dataset_id, image_id, size=256):
    thumb = thumbnail(ctx().store, model_id, dataset_id, image_id, size)
    headers = {"ETag": f'"{thumb.etag}"', "Cache-Control": CACHE_CONTROL}
    if request.if_none_match.contains_weak(thumb.etag):  # If-None-Match compares weakly (RFC 9110)
        return Response(status=304, headers=headers)
    return Response(thumb.path.read_bytes(), mimetype="image/jpeg", headers=headers)
