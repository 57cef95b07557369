"""A Django Channels consumer: joins a group on connect and echoes JSON back through the channel layer."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class RoomConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        if self.room == "private":
            await self.close()  # before accept: the handshake is denied (403)
            return
        await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()
        await self.send_json({"joined": self.room})

    async def disconnect(self, code: int) -> None:
        if self.room != "private":
            await self.channel_layer.group_discard(self.room, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.channel_layer.group_send(self.room, {"type": "room.message", "text": content.get("text")})

    async def room_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"room": self.room, "text": event["text"]})
