"""ASGI middleware that edits the headers of every HTTP response (security headers, relative
redirects): one wrapper, and each policy is a plain function `edit(headers, scope)`."""

from __future__ import annotations

from typing import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class EditResponseHeaders:
    def __init__(self, app: ASGIApp, edit: Callable[[MutableHeaders, Scope], None]):
        self.app = app
        self.edit = edit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_edited(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.edit(MutableHeaders(scope=message), scope)
            await send(message)

        await self.app(scope, receive, send_edited)
