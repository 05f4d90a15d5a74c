"""The web dashboard served by the trace API (pages and their SVG pictures)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["dashboard"])
