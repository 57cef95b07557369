"""The `db` the design doc's examples use but never define: a small in-memory, async user table.

Each row carries a ``role`` the public `User` model does not declare, so the examples can show what a
response model drops. New rows are checked like a database's constraints would check them; a bad row is
the client's fault and is answered with a FastAPI-shaped 422.
"""
from __future__ import annotations

import asyncio
from typing import Any, Optional

from pydantic import BaseModel, ValidationError

from covet import RequestValidationError

Row = dict[str, Any]

SAMPLE_USERS: tuple[Row, ...] = (
    {"id": 1, "name": "Ada", "email": "ada@example.com", "active": True, "role": "admin"},
    {"id": 2, "name": "Bob", "email": "bob@example.com", "active": False, "role": "member"},
    {"id": 3, "name": "Cy", "email": "cy@example.com", "active": True, "role": "member"},
)


class NewUser(BaseModel):
    """What `create_user` accepts."""

    name: str
    email: str
    active: bool = True
    role: str = "member"


class UserDB:
    """Users by id, starting with `SAMPLE_USERS`."""

    def __init__(self) -> None:
        self.users: dict[int, Row] = {row["id"]: dict(row) for row in SAMPLE_USERS}

    async def get_user(self, user_id: int) -> Optional[Row]:
        await asyncio.sleep(0)  # a real driver would wait for the database here
        row = self.users.get(user_id)
        return dict(row) if row is not None else None

    async def create_user(self, data: Any) -> Row:
        try:
            new = NewUser.model_validate(data)
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            raise RequestValidationError(errors, body=data) from None
        await asyncio.sleep(0)
        row = {"id": max(self.users, default=0) + 1, **new.model_dump()}
        self.users[row["id"]] = row
        return dict(row)

    async def list_users(self, limit: int, offset: int, active: Optional[bool]) -> list[Row]:
        await asyncio.sleep(0)
        rows = [dict(row) for row in self.users.values() if active is None or row["active"] is active]
        return rows[offset : offset + limit]


db = UserDB()
