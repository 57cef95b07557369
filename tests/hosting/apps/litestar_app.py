"""A Litestar app: a Controller with typed handlers, dataclass bodies, path and query parameters, dependency
injection, an exception, and its OpenAPI schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from litestar import Controller, Litestar, get, post
from litestar.di import Provide
from litestar.exceptions import NotFoundException


@dataclass
class Book:
    title: str
    pages: int


class Library:
    def __init__(self) -> None:
        self.books: list[Book] = [Book("Dune", 412)]


LIBRARY = Library()


def provide_library() -> Library:
    return LIBRARY


class BookController(Controller):
    path = "/books"
    dependencies: ClassVar[dict[str, Provide]] = {"library": Provide(provide_library, sync_to_thread=False)}

    @get("/")
    async def list_books(self, library: Library, min_pages: int = 0) -> list[Book]:
        return [b for b in library.books if b.pages >= min_pages]

    @get("/{index:int}")
    async def get_book(self, library: Library, index: int) -> Book:
        if not 0 <= index < len(library.books):
            raise NotFoundException(detail=f"no book {index}")
        return library.books[index]

    @post("/")
    async def add_book(self, library: Library, data: Book) -> Book:
        library.books.append(data)
        return data


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[BookController, health])
