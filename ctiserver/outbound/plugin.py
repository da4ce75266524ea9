"""Wiring of the outbound slice's web callback API: the checks of `web` over the callback service and the
CRM (do-not-call list, blacklisted customers)."""

from __future__ import annotations

from collections.abc import Callable

from crmstore.model import Flag
from crmstore.store import CrmStore

from ..projections.callbacks import CallbackBook
from .callbacks import CallbackService
from .web import Booking, WebCallbacks, WebCallbackSettings, WebRefusal, WebRequest


def web_callbacks(settings: WebCallbackSettings, callbacks: CallbackService, crm: CrmStore,
                  book: Callable[[], CallbackBook], clock: Callable[[], float]) -> WebCallbacks:
    def book_one(request: WebRequest, client: str) -> Booking:
        try:
            callback_id = callbacks.book(request.number, source="web", queue=settings.queue, name=request.name,
                                         topic=request.topic, due_at=request.due_at, requested_by=client)
        except ValueError as e:  # the configured queue is gone: the site's fault, said plainly
            raise WebRefusal(503, "unavailable", f"callbacks cannot be booked now ({e})") from None
        return Booking(callback_id, request.due_at)

    async def blacklisted(number: str) -> bool:
        identity = await crm.identify_by_phone(number)
        return identity is not None and Flag.BLACKLIST in identity.flags

    return WebCallbacks(settings, book_one, lambda number: book().pending_for(number) is not None,
                        crm.on_do_not_call, blacklisted, clock)
