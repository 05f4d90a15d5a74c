"""The ingest API's request and response schemas, in families (``VenueCreate``, ``VenuePublic``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from truyvet.events import Category, UtcSecond


class VenueCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    category: Category
    ward_code: str = Field(min_length=1, max_length=32)
    address: str = Field("", max_length=500)
    phone: str = Field("", max_length=32)
    default_stay_minutes: int | None = Field(None, ge=1, le=24 * 60)
    valid_from: UtcSecond | None = None
    valid_until: UtcSecond | None = None
    # The establishment on the ward's roster this venue is (GET /v1/reports/compliance gives the ids);
    # without it, venues are matched to the roster by name and address (docs/api.md, "Compliance").
    roster_id: str | None = Field(None, pattern=r"^r[0-9a-f]{15}$")


class VenuePublic(BaseModel):
    venue_id: str
    name: str
    category: Category
    ward_code: str
    address: str
    default_stay_minutes: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    created_at: datetime
    qr_payload: str
    key_id: str
    roster_id: str | None = None


class RejectedItem(BaseModel):
    index: int
    scan_id: str | None
    error: str


class ScanResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectedItem]


class QrKeyPublic(BaseModel):
    key_id: str
    algorithm: str = "Ed25519"
    public_key: str  # raw 32 bytes, base64url
