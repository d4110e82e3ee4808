"""Interaction routes that authenticate with the interaction token, not the bot
token: the callback and the application webhook (followups, @original)."""

from __future__ import annotations

from aiohttp import web

from .errors import json_response
from .interactions import InteractionService
from .messaging import read_body
from .model import Interaction
from .payloads import Payloads

NO_CONTENT = 204


class WebhookRoutes:
    def __init__(self, service: InteractionService, payloads: Payloads) -> None:
        self._service = service
        self._payloads = payloads

    def _interaction(self, request: web.Request) -> Interaction:
        return self._service.for_webhook(
            int(request.match_info["application_id"]), request.match_info["token"]
        )

    async def callback(self, request: web.Request) -> web.Response:
        interaction = self._service.for_callback(
            int(request.match_info["interaction_id"]), request.match_info["token"]
        )
        body = await read_body(request)
        result = self._service.respond(interaction, body)
        # discord.py always asks with_response=1 and reads result["interaction"];
        # without it Discord answers 204.
        if request.query.get("with_response") in ("1", "true", "True"):
            return json_response(result)
        return web.Response(status=NO_CONTENT)

    async def followup(self, request: web.Request) -> web.Response:
        interaction = self._interaction(request)
        body = await read_body(request)
        thread_id = request.query.get("thread_id")
        message = self._service.followup(
            interaction, body, thread_id=int(thread_id) if thread_id else None
        )
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(self._payloads.message(message))
        return web.Response(status=NO_CONTENT)

    async def get_message(self, request: web.Request) -> web.Response:
        interaction = self._interaction(request)
        message = self._service.webhook_message(interaction, request.match_info["message"])
        return json_response(self._payloads.message(message))

    async def edit_message(self, request: web.Request) -> web.Response:
        interaction = self._interaction(request)
        message = self._service.webhook_message(interaction, request.match_info["message"])
        body = await read_body(request)
        edited = self._service.edit(interaction, message, body)
        return json_response(self._payloads.message(edited))

    async def delete_message(self, request: web.Request) -> web.Response:
        interaction = self._interaction(request)
        message = self._service.webhook_message(interaction, request.match_info["message"])
        self._service.delete(message)
        return web.Response(status=NO_CONTENT)

    def add_routes(self, app: web.Application, prefix: str) -> None:
        hook = prefix + r"/webhooks/{application_id:\d+}/{token}"
        message = hook + "/messages/{message}"
        r = app.router
        r.add_post(prefix + r"/interactions/{interaction_id:\d+}/{token}/callback", self.callback)
        r.add_post(hook, self.followup)
        r.add_get(message, self.get_message)
        r.add_patch(message, self.edit_message)
        r.add_delete(message, self.delete_message)
