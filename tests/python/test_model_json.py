"""The native response-model JSON writer (covet/_model_json.py over covet._native.ModelJson) against pydantic-core's
dump_json: randomly generated models, values and dump options (fixed seed), edge cases, and the fallback paths.
Every comparison is of bytes: the writer must write exactly what pydantic writes, or hand the value back."""

from __future__ import annotations

import math
import random
import struct
from datetime import datetime
from enum import Enum
from typing import Any, Optional, Union

import pytest
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    TypeAdapter,
    computed_field,
    create_model,
    field_serializer,
    field_validator,
)

from covet import _model_json
from covet._model_json import Unsupported, compile_plan, response_renderer

native = pytest.importorskip("covet._native")
if not hasattr(native, "ModelJson"):
    pytest.skip("covet._native was built without ModelJson", allow_module_level=True)


def _writer(tp: Any, **options: Any) -> Any:
    options.setdefault("by_alias", False)  # the writer needs it given (FastAPI's routes always give it)
    adapter = TypeAdapter(tp)
    plan = compile_plan(adapter.core_schema, options)
    return native.ModelJson(plan, exclude_unset=bool(options.get("exclude_unset")),
                            exclude_none=bool(options.get("exclude_none")),
                            exclude_defaults=bool(options.get("exclude_defaults")))


def _same(tp: Any, value: Any, **options: Any) -> bytes:
    """Asserts the writer's bytes are pydantic's (the writer must not hand this value back); returns them."""
    options.setdefault("by_alias", False)
    expected = TypeAdapter(tp).dump_json(value, **options)
    got = _writer(tp, **options).dump(value)
    assert got == expected, (got, expected)
    return got  # type: ignore[no-any-return]


# ---- scalars -------------------------------------------------------------------------------------------------

def test_floats_across_magnitudes_and_random_bits() -> None:
    rng = random.Random(1414)
    values = [0.0, -0.0, 0.1, 0.2, 0.3, 1 / 3, 3.0, -3.0, 1e16, 1e15, 9999999999999998.0, 1e-5, 1e-6, 1e-7,
              1.5e-7, 123456789.125, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 2.0**53, 2.0**63,
              1e21, 1e22, 1e100, 1.234e-300, 0.000123, 12345678901234567890.0]
    values += [10.0**e for e in range(-30, 30)] + [1.5 * 10.0**e for e in range(-30, 30)]
    while len(values) < 20000:
        (d,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if math.isfinite(d):
            values.append(d)
        values.append(rng.uniform(-1e6, 1e6))
        values.append(round(rng.uniform(-100, 100), rng.randint(0, 6)))
    expected = TypeAdapter(list[float]).dump_json(values)
    assert _writer(list[float]).dump(values) == expected


def test_strings_ints_bools() -> None:
    strings = ["", "plain", 'quote " and \\ backslash', "\x00\x01\x08\x09\x0a\x0b\x0c\x0d\x1f\x7f", "é ü 漢字 🎉",
               "\u2028\u2029", "</script>", "a" * 5000, "".join(chr(c) for c in range(300))]
    _same(list[str], strings)
    ints = [0, 1, -1, 2**31, -(2**31), 2**63 - 1, -(2**63), 10**18, -(10**18)]
    _same(list[int], ints)
    _same(list[bool], [True, False])
    _same(dict[str, Optional[int]], {"a": None, "b": 3, "é\n": -7})
    _same(tuple[int, ...], (1, 2, 3))
    _same(set[str], {"x", "y", "z"})
    _same(list[None], [None, None])


def test_values_the_writer_hands_back() -> None:
    """A value that is not what the schema says, or that pydantic writes by its own rules: None (pydantic)."""
    class Color(str, Enum):  # noqa: UP042 (the str-and-Enum form is what users write)
        red = "red"

    class Num(int):
        pass

    assert _writer(list[str]).dump(["a", Color.red]) is None
    assert _writer(list[int]).dump([1, True]) is None
    assert _writer(list[int]).dump([2**64]) is None
    assert _writer(list[int]).dump([Num(3)]) is None
    assert _writer(list[float]).dump([1.0, math.inf]) is None
    assert _writer(list[float]).dump([math.nan]) is None
    assert _writer(list[float]).dump([1]) is None
    assert _writer(list[str]).dump(["\ud800"]) is None
    assert _writer(list[str]).dump(("a",)) is None


# ---- plans the writer refuses: pydantic keeps the type ------------------------------------------------------

class Leaf(BaseModel):
    x: int = 0
    label: Optional[str] = Field(default=None, alias="Label")


class WithSerializer(BaseModel):
    a: int

    @field_serializer("a")
    def double(self, value: int) -> int:
        return value * 2


class WithComputed(BaseModel):
    a: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def b(self) -> int:
        return self.a + 1


class Extra(BaseModel):
    model_config = ConfigDict(extra="allow")
    a: int


class InfNan(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="constants")
    a: float


class Root(RootModel[list[int]]):
    pass


class Dated(BaseModel):
    at: datetime


_A: dict[str, Any] = {"by_alias": True}


@pytest.mark.parametrize("tp, options", [
    (WithSerializer, _A), (WithComputed, _A), (Extra, _A), (InfNan, _A), (Root, _A), (Dated, _A),
    (Union[int, str], _A), (list[Any], _A), (dict[int, str], _A), (tuple[int, str], _A),
    (list[int], {**_A, "round_trip": True}), (list[int], {}),  # by_alias not given: the config's default
    (list[WithSerializer], {**_A, "exclude": {0: {"a"}}}),
    (list[Leaf], {**_A, "include": {"__all__": {"x"}, 1: True}}),
    (list[Leaf], {**_A, "include": {"y"}}),  # drops every item
    (Leaf, {**_A, "exclude": {"x": True, "__all__": {"y"}}}),  # a key and "__all__": pydantic merges them
    (dict[str, Leaf], {**_A, "exclude": {"__all__": {"x"}}}),
])
def test_unsupported_types_and_options(tp: Any, options: dict[str, Any]) -> None:
    with pytest.raises(Unsupported):
        compile_plan(TypeAdapter(tp).core_schema, options)


def test_renderer_falls_back_to_pydantic() -> None:
    cases: list[tuple[Any, Any]] = [
        (WithSerializer, WithSerializer(a=2)), (WithComputed, WithComputed(a=1)), (Extra, Extra(a=1, z=2)),
        (InfNan, InfNan(a=math.inf)), (Root, Root([1, 2])), (Dated, Dated(at=datetime(2020, 1, 2, 3, 4, 5))),
        (list[float], [1.0, math.inf]), (list[int], [2**70]),
    ]
    for tp, value in cases:
        adapter = TypeAdapter(tp)
        assert response_renderer(adapter, {"by_alias": True})(value) == adapter.dump_json(value, by_alias=True)


# ---- models ---------------------------------------------------------------------------------------------------

class Node(BaseModel):
    name: str
    children: list[Node] = []
    leaf: Optional[Leaf] = None
    weights: dict[str, float] = {}
    hidden: str = Field(default="h", exclude=True)


class Item(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str] = []
    description: Optional[str] = None
    internal: str = "x"

    @field_validator("name")
    @classmethod
    def strip(cls, value: str) -> str:
        return value.strip()


class ItemInDB(Item):
    secret: str


def test_nested_recursive_aliases_and_filters() -> None:
    tree = Node(name="root", children=[Node(name="a", leaf=Leaf(x=1)), Node(name="b", weights={"w": 0.5},
                                                                             children=[Node(name="c")])],
                leaf=Leaf(Label="l"))
    for by_alias in (True, False):
        for options in ({}, {"exclude_unset": True}, {"exclude_defaults": True}, {"exclude_none": True},
                        {"exclude": {"leaf": {"Label", "label"}}}, {"include": {"name", "children"}},
                        {"exclude": {"children": {"__all__": {"leaf"}}}},
                        {"include": {"children": {"__all__": {"name"}}, "name": True}},
                        {"exclude": {"children": {"__all__": {"children": {"__all__": {"name"}}}}}},
                        {"exclude": {"leaf": ...}}, {"exclude_unset": True, "exclude_none": True}):
            _same(Node, tree, by_alias=by_alias, **options)


def test_subclass_instances_and_the_bench_route() -> None:
    items = [ItemInDB(id=i, name=f" item {i} ", price=i * 1.5, tags=["a", "b"], internal="hidden", secret="s")
             for i in range(20)]
    options: dict[str, Any] = {"by_alias": True, "exclude_unset": True, "exclude": {"__all__": {"internal"}}}
    _same(list[Item], items, **options)
    adapter = TypeAdapter(list[Item])
    render = response_renderer(adapter, options)
    assert render(items) == adapter.dump_json(adapter.validate_python(items, from_attributes=True), **options)
    # Dicts and plain objects still go through validation.
    dicts = [{"id": 1, "name": " n ", "price": 2, "secret": "s"}]
    assert render(dicts) == b'[{"id":1,"name":"n","price":2.0}]'


def test_exclude_unset_follows_fields_set_and_dict_order() -> None:
    item = Item.model_construct(_fields_set={"name", "id"}, id=3, name="n", price=1.0)
    _same(Item, item, exclude_unset=True)
    reordered = Item(id=1, name="n", price=2.0)
    reordered.__dict__ = {"price": 2.0, "id": 1, "junk": object(), "name": "n"}
    _same(Item, reordered)
    # A field overridden by a subclass with another type: the value is not the declared one, pydantic writes it.
    bad = Item.model_construct(id="not an int", name="n", price=1.0)
    assert _writer(Item).dump(bad) is None


# ---- random models, values and options ----------------------------------------------------------------------

_ALPHABET = "abcxyz é漢🎉\"\\\n\t\x01"


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.count = 0

    def string(self) -> str:
        return "".join(self.rng.choice(_ALPHABET) for _ in range(self.rng.randint(0, 8)))

    def type_(self, depth: int) -> Any:
        r = self.rng.random()
        scalars: list[Any] = [str, int, float, bool]
        if depth > 2 or r < 0.45:
            return self.rng.choice(scalars)
        if r < 0.55:
            return Optional[self.type_(depth + 1)]
        if r < 0.65:
            return list[self.type_(depth + 1)]  # type: ignore[misc]
        if r < 0.7:
            return tuple[self.type_(depth + 1), ...]  # type: ignore[misc]
        if r < 0.75:
            return set[self.rng.choice([int, str])]  # type: ignore[misc]
        if r < 0.82:
            return dict[str, self.type_(depth + 1)]  # type: ignore[misc]
        return self.model(depth + 1)

    def model(self, depth: int) -> type[BaseModel]:
        self.count += 1
        fields: dict[str, Any] = {}
        for i in range(self.rng.randint(1, 6)):
            tp = self.type_(depth)
            kwargs: dict[str, Any] = {}
            if self.rng.random() < 0.3:
                kwargs["serialization_alias"] = f"A{i}-{self.string()}"
            if self.rng.random() < 0.4:
                kwargs["default"] = self.value(tp, 3)
            fields[f"f{i}"] = (tp, Field(**kwargs))
        return create_model(f"M{self.count}", **fields)  # type: ignore[call-overload, no-any-return]

    def value(self, tp: Any, depth: int = 0) -> Any:
        rng = self.rng
        if tp is str:
            return self.string()
        if tp is int:
            return rng.choice([0, 1, -5, 2**40, -(2**62), rng.randint(-1000, 1000)])
        if tp is float:
            return rng.choice([0.0, 0.1, -2.5, 1e16, 1e-7, 3.0, rng.uniform(-1e9, 1e9),
                               rng.random() * 10 ** rng.randint(-20, 20)])
        if tp is bool:
            return rng.random() < 0.5
        origin = getattr(tp, "__origin__", None)
        args = getattr(tp, "__args__", ())
        if origin is Union:
            return None if rng.random() < 0.4 else self.value(args[0], depth + 1)
        n = rng.randint(0, 3 if depth < 3 else 0)
        if origin is list:
            return [self.value(args[0], depth + 1) for _ in range(n)]
        if origin is tuple:
            return tuple(self.value(args[0], depth + 1) for _ in range(n))
        if origin is set:
            return {self.value(args[0], depth + 1) for _ in range(n)}
        if origin is dict:
            return {self.string(): self.value(args[1], depth + 1) for _ in range(n)}
        assert isinstance(tp, type) and issubclass(tp, BaseModel)
        data = {}
        for name, field in tp.model_fields.items():
            if field.is_required() or rng.random() < 0.6:
                data[name] = self.value(field.annotation, depth + 1)
        return tp(**data)

    def filters(self, tp: type[BaseModel], depth: int = 0) -> Any:
        names = list(tp.model_fields)
        chosen = self.rng.sample(names, self.rng.randint(0, len(names)))
        if depth > 1 or self.rng.random() < 0.5:
            return set(chosen)
        out: dict[str, Any] = {}
        for name in chosen:
            annotation = tp.model_fields[name].annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel) and self.rng.random() < 0.6:
                out[name] = self.filters(annotation, depth + 1)
            else:
                out[name] = self.rng.choice([True, ...])
        return out


def test_random_models_values_and_options() -> None:
    gen = _Gen(20260101)
    native_count = 0
    total = 0
    for _ in range(300):
        model = gen.model(0)
        tp: Any = model if gen.rng.random() < 0.6 else list[model]  # type: ignore[valid-type]
        adapter = TypeAdapter(tp)
        for _ in range(6):
            options: dict[str, Any] = {"by_alias": gen.rng.random() < 0.7}
            for flag in ("exclude_unset", "exclude_defaults", "exclude_none"):
                if gen.rng.random() < 0.3:
                    options[flag] = True
            if gen.rng.random() < 0.3:
                f = gen.filters(model)
                options["exclude" if gen.rng.random() < 0.6 else "include"] = f if tp is model else {"__all__": f}
            value = gen.value(model) if tp is model else [gen.value(model) for _ in range(gen.rng.randint(0, 3))]
            expected = adapter.dump_json(value, **options)
            total += 1
            try:
                got = _writer(tp, **options).dump(value)
            except Unsupported:
                continue
            if got is not None:
                native_count += 1
                assert got == expected, (tp, options, value)
            assert response_renderer(adapter, options)(value) == expected
    assert native_count > total * 0.6, (native_count, total)  # the test exercises the writer, not its fallback


def test_identity_check_skips_validation_only_for_instances() -> None:
    assert native.model_instances(ItemInDB(id=1, name="n", price=1.0, secret="s"), Item) == 1
    assert native.model_instances([ItemInDB(id=1, name="n", price=1.0, secret="s"), Item(id=2, name="m", price=2)],
                                  Item) == 2
    assert native.model_instances([], Item) == 2
    assert native.model_instances([Item(id=2, name="m", price=2), {"id": 1}], Item) == 0
    assert native.model_instances((Item(id=2, name="m", price=2),), Item) == 0
    assert native.model_instances({"id": 1}, Item) == 0

    class Revalidated(BaseModel):
        model_config = ConfigDict(revalidate_instances="always")
        name: str

        @field_validator("name")
        @classmethod
        def upper(cls, value: str) -> str:
            return value.upper()

    adapter = TypeAdapter(list[Revalidated])
    value = [Revalidated.model_construct(name="lower")]
    assert response_renderer(adapter, {"by_alias": True})(value) == b'[{"name":"LOWER"}]'


def test_module_has_no_writer_without_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_model_json, "_native_writer", lambda: None)
    adapter = TypeAdapter(list[Item])
    items = [Item(id=1, name="n", price=1.0)]
    assert response_renderer(adapter, {"by_alias": True})(items) == adapter.dump_json(items, by_alias=True)


def test_routes_through_real_sockets(make_client: Any) -> None:
    """The bench's route shapes served by CovetPy: the body is pydantic-core's bytes, exactly."""
    from covet import CovetPy

    app = CovetPy()
    items = [ItemInDB(id=i, name=f"item {i}", price=i * 1.5, tags=["é", "\n"], internal="hidden", secret="s")
             for i in range(20)]
    tree = Node(name="root", children=[Node(name="a", leaf=Leaf(x=1))], weights={"w": 1e-7})

    @app.get("/items", response_model=list[Item], response_model_exclude_unset=True,
             response_model_exclude={"__all__": {"internal"}})
    def get_items() -> Any:
        return items

    @app.get("/tree", response_model_exclude_defaults=True)
    def get_tree() -> Node:
        return tree

    @app.get("/bad", response_model=list[Item])
    def bad() -> Any:
        return [{"id": "x"}]

    options: dict[str, Any] = {"by_alias": True, "exclude_unset": True, "exclude": {"__all__": {"internal"}}}
    client = make_client(app, raise_server_exceptions=False)
    response = client.get("/items")
    assert response.status_code == 200
    assert response.content == TypeAdapter(list[Item]).dump_json(items, **options)
    response = client.get("/tree")
    assert response.content == TypeAdapter(Node).dump_json(tree, by_alias=True, exclude_defaults=True)
    assert client.get("/bad").status_code == 500
