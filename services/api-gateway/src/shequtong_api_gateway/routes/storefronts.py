"""Charity storefronts (公益服务店铺): offerings, time slots, residents' bookings and ratings."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import Query
from pydantic import AwareDatetime, BaseModel, Field

from shequtong.volunteers.v1 import volunteers_pb2 as pb
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routes.volunteers import name_of, page
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts, ts

router = gateway_router(tags=["storefronts"])

StorefrontState = Literal["open", "closed"]
STOREFRONT_STATES: dict[str, int] = {"open": pb.STOREFRONT_STATE_OPEN, "closed": pb.STOREFRONT_STATE_CLOSED}
BookingState = Literal["requested", "accepted", "declined", "fulfilled", "cancelled"]
BOOKING_STATES: dict[str, int] = {
    "requested": pb.BOOKING_STATE_REQUESTED,
    "accepted": pb.BOOKING_STATE_ACCEPTED,
    "declined": pb.BOOKING_STATE_DECLINED,
    "fulfilled": pb.BOOKING_STATE_FULFILLED,
    "cancelled": pb.BOOKING_STATE_CANCELLED,
}


# --- storefronts ------------------------------------------------------------------------------------------


class StorefrontIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["阳光便民服务点"])
    description: str = Field(default="", max_length=2000)
    address: str = Field(default="", max_length=300, examples=["淞南路100号"])
    neighbourhood_ids: list[str] = Field(min_length=1, max_length=200, description="The neighbourhoods it serves")


class StatsOut(BaseModel):
    rating_count: int
    average_rating: float
    fulfilled_count: int
    declined_count: int
    fulfilment_rate: float = Field(description="fulfilled / (fulfilled + declined)")
    booking_count: int


class StorefrontOut(BaseModel):
    id: str
    organisation_id: str
    organisation_name: str
    name: str
    description: str
    address: str
    neighbourhood_ids: list[str]
    state: StorefrontState
    stats: StatsOut
    opened_at: datetime | None


class StorefrontPage(BaseModel):
    items: list[StorefrontOut]
    next_cursor: str | None


def storefront_out(s: pb.Storefront) -> StorefrontOut:
    return StorefrontOut(
        id=s.id,
        organisation_id=s.organisation_id,
        organisation_name=s.organisation_name,
        name=s.name,
        description=s.description,
        address=s.address,
        neighbourhood_ids=list(s.neighbourhood_ids),
        state=name_of(STOREFRONT_STATES, s.state),  # type: ignore[arg-type]
        stats=StatsOut(
            rating_count=s.stats.rating_count,
            average_rating=s.stats.average_rating,
            fulfilled_count=s.stats.fulfilled_count,
            declined_count=s.stats.declined_count,
            fulfilment_rate=s.stats.fulfilment_rate,
            booking_count=s.stats.booking_count,
        ),
        opened_at=from_ts(s.opened_at),
    )


@router.post(
    "/v1/organisations/{organisation_id}/storefronts",
    status_code=201,
    response_model=StorefrontOut,
    summary="Open a storefront (approved organisations only) serving chosen neighbourhoods",
)
async def open_storefront(organisation_id: str, body: StorefrontIn, caller: SignedIn) -> StorefrontOut:
    reply = await caller.call(
        caller.clients.volunteers.OpenStorefront,
        pb.OpenStorefrontRequest(
            organisation_id=organisation_id,
            name=body.name,
            description=body.description,
            address=body.address,
            neighbourhood_ids=body.neighbourhood_ids,
        ),
    )
    return storefront_out(reply.storefront)


@router.get(
    "/v1/storefronts",
    response_model=StorefrontPage,
    summary="Open storefronts serving a neighbourhood, or an organisation's storefronts",
)
async def list_storefronts(
    caller: SignedIn,
    neighbourhood_id: str | None = None,
    organisation_id: str | None = None,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> StorefrontPage:
    reply = await caller.call(
        caller.clients.volunteers.ListStorefronts,
        pb.ListStorefrontsRequest(
            neighbourhood_id=neighbourhood_id or "",
            organisation_id=organisation_id or "",
            page=page(cursor, page_size),
        ),
    )
    return StorefrontPage(
        items=[storefront_out(s) for s in reply.storefronts], next_cursor=reply.page.next_cursor or None
    )


@router.get(
    "/v1/storefronts/{storefront_id}",
    response_model=StorefrontOut,
    summary="One storefront with its ratings and fulfilment rate",
)
async def get_storefront(storefront_id: str, caller: SignedIn) -> StorefrontOut:
    reply = await caller.call(caller.clients.volunteers.GetStorefront, pb.GetStorefrontRequest(id=storefront_id))
    return storefront_out(reply.storefront)


@router.post("/v1/storefronts/{storefront_id}/close", response_model=StorefrontOut, summary="Close a storefront")
async def close_storefront(storefront_id: str, caller: SignedIn) -> StorefrontOut:
    reply = await caller.call(caller.clients.volunteers.CloseStorefront, pb.CloseStorefrontRequest(id=storefront_id))
    return storefront_out(reply.storefront)


# --- offerings and slots ----------------------------------------------------------------------------------


class OfferingIn(BaseModel):
    title: str = Field(min_length=1, max_length=200, examples=["老年人免费理发"])
    description: str = Field(default="", max_length=2000)
    category: str = Field(default="", max_length=64, examples=["haircut"])
    price_cents: int = Field(default=0, ge=0, le=100_000_000, description="0 = free; shown, never charged here")
    neighbourhood_ids: list[str] = Field(
        default_factory=list, max_length=200, description="Who may book (a subset of those served; empty = all)"
    )
    eligibility_note: str = Field(default="", max_length=500, examples=["60岁以上老人"])


class OfferingOut(BaseModel):
    id: str
    storefront_id: str
    title: str
    description: str
    category: str
    price_cents: int
    free: bool
    neighbourhood_ids: list[str]
    eligibility_note: str
    created_at: datetime | None


class OfferingPage(BaseModel):
    items: list[OfferingOut]
    next_cursor: str | None


class SlotIn(BaseModel):
    starts_at: AwareDatetime = Field(examples=["2026-11-02T09:00:00+08:00"])
    ends_at: AwareDatetime = Field(examples=["2026-11-02T09:30:00+08:00"])
    capacity: int = Field(ge=1, le=1000, examples=[1])


class SlotOut(BaseModel):
    id: str
    offering_id: str
    starts_at: datetime | None
    ends_at: datetime | None
    capacity: int
    booked_count: int
    places_left: int


class SlotPage(BaseModel):
    items: list[SlotOut]
    next_cursor: str | None


def offering_out(o: pb.Offering) -> OfferingOut:
    return OfferingOut(
        id=o.id,
        storefront_id=o.storefront_id,
        title=o.title,
        description=o.description,
        category=o.category,
        price_cents=o.price_cents,
        free=o.price_cents == 0,
        neighbourhood_ids=list(o.neighbourhood_ids),
        eligibility_note=o.eligibility_note,
        created_at=from_ts(o.created_at),
    )


def slot_out(s: pb.Slot) -> SlotOut:
    return SlotOut(
        id=s.id,
        offering_id=s.offering_id,
        starts_at=from_ts(s.starts_at),
        ends_at=from_ts(s.ends_at),
        capacity=s.capacity,
        booked_count=s.booked_count,
        places_left=max(s.capacity - s.booked_count, 0),
    )


@router.post(
    "/v1/storefronts/{storefront_id}/offerings",
    status_code=201,
    response_model=OfferingOut,
    summary="Add a service offering (organisation administrators)",
)
async def add_offering(storefront_id: str, body: OfferingIn, caller: SignedIn) -> OfferingOut:
    reply = await caller.call(
        caller.clients.volunteers.AddOffering,
        pb.AddOfferingRequest(
            storefront_id=storefront_id,
            title=body.title,
            description=body.description,
            category=body.category,
            price_cents=body.price_cents,
            neighbourhood_ids=body.neighbourhood_ids,
            eligibility_note=body.eligibility_note,
        ),
    )
    return offering_out(reply.offering)


@router.get(
    "/v1/storefronts/{storefront_id}/offerings", response_model=OfferingPage, summary="A storefront's offerings"
)
async def list_offerings(
    storefront_id: str,
    caller: SignedIn,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> OfferingPage:
    reply = await caller.call(
        caller.clients.volunteers.ListOfferings,
        pb.ListOfferingsRequest(storefront_id=storefront_id, page=page(cursor, page_size)),
    )
    return OfferingPage(items=[offering_out(o) for o in reply.offerings], next_cursor=reply.page.next_cursor or None)


@router.post(
    "/v1/offerings/{offering_id}/slots",
    status_code=201,
    response_model=SlotOut,
    summary="Offer a time slot with a capacity",
)
async def add_slot(offering_id: str, body: SlotIn, caller: SignedIn) -> SlotOut:
    reply = await caller.call(
        caller.clients.volunteers.AddSlot,
        pb.AddSlotRequest(
            offering_id=offering_id, starts_at=ts(body.starts_at), ends_at=ts(body.ends_at), capacity=body.capacity
        ),
    )
    return slot_out(reply.slot)


@router.get("/v1/offerings/{offering_id}/slots", response_model=SlotPage, summary="An offering's time slots")
async def list_slots(
    offering_id: str,
    caller: SignedIn,
    starts_after: AwareDatetime | None = None,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> SlotPage:
    reply = await caller.call(
        caller.clients.volunteers.ListSlots,
        pb.ListSlotsRequest(
            offering_id=offering_id,
            starts_after=ts(starts_after) if starts_after else None,
            page=page(cursor, page_size),
        ),
    )
    return SlotPage(items=[slot_out(s) for s in reply.slots], next_cursor=reply.page.next_cursor or None)


# --- bookings -----------------------------------------------------------------------------------------------


class BookingIn(BaseModel):
    slot_id: str | None = Field(default=None, max_length=36, description="Empty: a request without a slot")
    neighbourhood_id: str | None = Field(default=None, max_length=36, description="Which of your neighbourhoods")
    note: str = Field(default="", max_length=500, examples=["行动不便，希望上门"])


class BookingOut(BaseModel):
    id: str
    storefront_id: str
    offering_id: str
    offering_title: str
    price_cents: int
    slot_id: str | None
    slot_starts_at: datetime | None
    organisation_id: str
    person_id: str
    display_name: str
    neighbourhood_id: str
    state: BookingState
    note: str
    reason: str
    rating: int | None
    rating_comment: str
    requested_at: datetime | None
    decided_at: datetime | None
    fulfilled_at: datetime | None
    rated_at: datetime | None


class BookingPage(BaseModel):
    items: list[BookingOut]
    next_cursor: str | None


class DeclineIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500, examples=["该时段师傅请假"])


class CancelBookingIn(BaseModel):
    reason: str = Field(default="", max_length=500)


class RatingIn(BaseModel):
    rating: int = Field(ge=1, le=5, examples=[5])
    comment: str = Field(default="", max_length=500, examples=["师傅很耐心"])


def booking_out(b: pb.Booking) -> BookingOut:
    return BookingOut(
        id=b.id,
        storefront_id=b.storefront_id,
        offering_id=b.offering_id,
        offering_title=b.offering_title,
        price_cents=b.price_cents,
        slot_id=b.slot_id or None,
        slot_starts_at=from_ts(b.slot_starts_at),
        organisation_id=b.organisation_id,
        person_id=b.person_id,
        display_name=b.display_name,
        neighbourhood_id=b.neighbourhood_id,
        state=name_of(BOOKING_STATES, b.state),  # type: ignore[arg-type]
        note=b.note,
        reason=b.reason,
        rating=b.rating or None,
        rating_comment=b.rating_comment,
        requested_at=from_ts(b.requested_at),
        decided_at=from_ts(b.decided_at),
        fulfilled_at=from_ts(b.fulfilled_at),
        rated_at=from_ts(b.rated_at),
    )


@router.post(
    "/v1/offerings/{offering_id}/bookings",
    status_code=201,
    response_model=BookingOut,
    summary="Book a slot (or request the service) as a resident of a served neighbourhood",
)
async def request_booking(offering_id: str, body: BookingIn, caller: SignedIn) -> BookingOut:
    reply = await caller.call(
        caller.clients.volunteers.RequestBooking,
        pb.RequestBookingRequest(
            offering_id=offering_id,
            slot_id=body.slot_id or "",
            neighbourhood_id=body.neighbourhood_id or "",
            note=body.note,
        ),
    )
    return booking_out(reply.booking)


@router.get(
    "/v1/bookings",
    response_model=BookingPage,
    summary="A storefront's bookings (its organisation), or your own (mine=true)",
)
async def list_bookings(
    caller: SignedIn,
    storefront_id: str | None = None,
    state: BookingState | None = None,
    mine: bool = False,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> BookingPage:
    reply = await caller.call(
        caller.clients.volunteers.ListBookings,
        pb.ListBookingsRequest(
            storefront_id=storefront_id or "",
            state=BOOKING_STATES.get(state or "", pb.BOOKING_STATE_UNSPECIFIED),  # type: ignore[arg-type]
            mine=mine,
            page=page(cursor, page_size),
        ),
    )
    return BookingPage(items=[booking_out(b) for b in reply.bookings], next_cursor=reply.page.next_cursor or None)


@router.get("/v1/bookings/{booking_id}", response_model=BookingOut, summary="One booking")
async def get_booking(booking_id: str, caller: SignedIn) -> BookingOut:
    reply = await caller.call(caller.clients.volunteers.GetBooking, pb.GetBookingRequest(id=booking_id))
    return booking_out(reply.booking)


@router.post("/v1/bookings/{booking_id}/accept", response_model=BookingOut, summary="Accept (organisation)")
async def accept(booking_id: str, caller: SignedIn) -> BookingOut:
    reply = await caller.call(caller.clients.volunteers.AcceptBooking, pb.AcceptBookingRequest(id=booking_id))
    return booking_out(reply.booking)


@router.post(
    "/v1/bookings/{booking_id}/decline", response_model=BookingOut, summary="Decline with a reason (organisation)"
)
async def decline(booking_id: str, body: DeclineIn, caller: SignedIn) -> BookingOut:
    reply = await caller.call(
        caller.clients.volunteers.DeclineBooking, pb.DeclineBookingRequest(id=booking_id, reason=body.reason)
    )
    return booking_out(reply.booking)


@router.post("/v1/bookings/{booking_id}/fulfil", response_model=BookingOut, summary="Mark fulfilled (organisation)")
async def fulfil(booking_id: str, caller: SignedIn) -> BookingOut:
    reply = await caller.call(caller.clients.volunteers.FulfilBooking, pb.FulfilBookingRequest(id=booking_id))
    return booking_out(reply.booking)


@router.post("/v1/bookings/{booking_id}/cancel", response_model=BookingOut, summary="Cancel your booking")
async def cancel(booking_id: str, body: CancelBookingIn, caller: SignedIn) -> BookingOut:
    reply = await caller.call(
        caller.clients.volunteers.CancelBooking, pb.CancelBookingRequest(id=booking_id, reason=body.reason)
    )
    return booking_out(reply.booking)


@router.post("/v1/bookings/{booking_id}/rating", response_model=BookingOut, summary="Rate a fulfilled booking")
async def rate(booking_id: str, body: RatingIn, caller: SignedIn) -> BookingOut:
    reply = await caller.call(
        caller.clients.volunteers.RateBooking,
        pb.RateBookingRequest(id=booking_id, rating=body.rating, comment=body.comment),
    )
    return booking_out(reply.booking)
