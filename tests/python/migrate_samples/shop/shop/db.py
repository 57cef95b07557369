"""An in-memory store, one per app (created by the lifespan, reachable as request.app.state.db)."""

from typing import Optional

from .models import Item, ItemIn


class ItemNotFound(Exception):
    def __init__(self, item_id: int) -> None:
        super().__init__(item_id)
        self.item_id = item_id


class Store:
    def __init__(self) -> None:
        self.items: dict[int, Item] = {}
        self.next_id = 1
        self.audit: list[str] = []

    def add(self, data: ItemIn, owner: str) -> Item:
        item = Item(id=self.next_id, owner=owner, **data.model_dump())
        self.items[item.id] = item
        self.next_id += 1
        return item

    def get(self, item_id: int) -> Item:
        try:
            return self.items[item_id]
        except KeyError:
            raise ItemNotFound(item_id) from None

    def delete(self, item_id: int) -> None:
        self.get(item_id)
        del self.items[item_id]

    def find(self, tag: Optional[str]) -> list[Item]:
        return [i for i in self.items.values() if tag is None or tag in i.tags]
