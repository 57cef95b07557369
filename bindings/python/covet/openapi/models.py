"""The OpenAPI 3.1 document as pydantic v2 models, under the names FastAPI gives them (``fastapi.openapi.models``).

Each model is one OpenAPI object (Info, Server, Operation, PathItem, the security schemes ...). Field names follow
the spec; where the spec's name is a Python keyword or starts with ``$`` the field carries a trailing underscore or
another name and the spec's name as its alias (``in_`` for ``in``, ``ref`` for ``$ref``, ``schema_`` for ``schema``,
``type_`` for a security scheme's ``type``): build them with either name, dump them with
``model_dump(by_alias=True, exclude_none=True)`` to get the document's JSON shape. Models deriving from
`BaseModelWithConfig` keep unknown keys (specification extensions such as ``x-logo``).

The common use is a security scheme's flows, as FastAPI's docs show it::

    from covet.openapi.models import OAuthFlows as OAuthFlowsModel
    from covet.security import OAuth2

    oauth2 = OAuth2(flows=OAuthFlowsModel(password={"tokenUrl": "token", "scopes": {}}))

``email`` of `Contact` is a plain string here (FastAPI checks it with email-validator when that is installed).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal, Optional, Union

from pydantic import AnyUrl, BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

__all__ = [
    "XML", "APIKey", "APIKeyIn", "BaseModelWithConfig", "Components", "Contact", "Discriminator", "Encoding",
    "Example", "ExternalDocumentation", "HTTPBase", "HTTPBearer", "Header", "Info", "License", "Link", "MediaType",
    "OAuth2", "OAuthFlow", "OAuthFlowAuthorizationCode", "OAuthFlowClientCredentials", "OAuthFlowImplicit",
    "OAuthFlowPassword", "OAuthFlows", "OpenAPI", "OpenIdConnect", "Operation", "Parameter", "ParameterBase",
    "ParameterInType", "PathItem", "Reference", "RequestBody", "Response", "Schema", "SchemaOrBool", "SchemaType",
    "SecurityBase", "SecurityScheme", "SecuritySchemeType", "Server", "ServerVariable", "Tag",
]


class BaseModelWithConfig(BaseModel):
    """An OpenAPI object that keeps keys it does not declare (the spec's ``x-...`` extensions)."""

    model_config = ConfigDict(extra="allow")


class Contact(BaseModelWithConfig):
    name: Optional[str] = None
    url: Optional[AnyUrl] = None
    email: Optional[str] = None


class License(BaseModelWithConfig):
    name: str
    identifier: Optional[str] = None
    url: Optional[AnyUrl] = None


class Info(BaseModelWithConfig):
    title: str
    version: str
    summary: Optional[str] = None
    description: Optional[str] = None
    termsOfService: Optional[str] = None
    contact: Optional[Contact] = None
    license: Optional[License] = None


class ServerVariable(BaseModelWithConfig):
    default: str
    enum: Optional[list[str]] = Field(default=None, min_length=1)
    description: Optional[str] = None


class Server(BaseModelWithConfig):
    url: Union[AnyUrl, str]
    description: Optional[str] = None
    variables: Optional[dict[str, ServerVariable]] = None


class Reference(BaseModel):
    """``{"$ref": "#/components/..."}``; build it as ``Reference(ref=...)`` or from the dict."""

    model_config = ConfigDict(populate_by_name=True)

    ref: str = Field(alias="$ref")


class Discriminator(BaseModel):
    propertyName: str
    mapping: Optional[dict[str, str]] = None


class XML(BaseModelWithConfig):
    name: Optional[str] = None
    namespace: Optional[str] = None
    prefix: Optional[str] = None
    attribute: Optional[bool] = None
    wrapped: Optional[bool] = None


class ExternalDocumentation(BaseModelWithConfig):
    url: AnyUrl
    description: Optional[str] = None


SchemaType = Literal["array", "boolean", "integer", "null", "number", "object", "string"]
"""A JSON Schema 2020-12 ``type`` value."""


class Schema(BaseModelWithConfig):
    """A JSON Schema 2020-12 schema with OpenAPI's additions (discriminator, xml, externalDocs, example)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    # core vocabulary ($-keywords)
    schema_: Optional[str] = Field(default=None, alias="$schema")
    vocabulary: Optional[str] = Field(default=None, alias="$vocabulary")
    id: Optional[str] = Field(default=None, alias="$id")
    anchor: Optional[str] = Field(default=None, alias="$anchor")
    dynamicAnchor: Optional[str] = Field(default=None, alias="$dynamicAnchor")
    ref: Optional[str] = Field(default=None, alias="$ref")
    dynamicRef: Optional[str] = Field(default=None, alias="$dynamicRef")
    defs: Optional[dict[str, SchemaOrBool]] = Field(default=None, alias="$defs")
    comment: Optional[str] = Field(default=None, alias="$comment")
    # applying subschemas
    allOf: Optional[list[SchemaOrBool]] = None
    anyOf: Optional[list[SchemaOrBool]] = None
    oneOf: Optional[list[SchemaOrBool]] = None
    not_: Optional[SchemaOrBool] = Field(default=None, alias="not")
    if_: Optional[SchemaOrBool] = Field(default=None, alias="if")
    then: Optional[SchemaOrBool] = None
    else_: Optional[SchemaOrBool] = Field(default=None, alias="else")
    dependentSchemas: Optional[dict[str, SchemaOrBool]] = None
    prefixItems: Optional[list[SchemaOrBool]] = None
    items: Optional[SchemaOrBool] = None
    contains: Optional[SchemaOrBool] = None
    properties: Optional[dict[str, SchemaOrBool]] = None
    patternProperties: Optional[dict[str, SchemaOrBool]] = None
    additionalProperties: Optional[SchemaOrBool] = None
    propertyNames: Optional[SchemaOrBool] = None
    unevaluatedItems: Optional[SchemaOrBool] = None
    unevaluatedProperties: Optional[SchemaOrBool] = None
    # structural validation
    type: Optional[Union[SchemaType, list[SchemaType]]] = None
    enum: Optional[list[Any]] = None
    const: Optional[Any] = None
    multipleOf: Optional[float] = Field(default=None, gt=0)
    maximum: Optional[float] = None
    exclusiveMaximum: Optional[float] = None
    minimum: Optional[float] = None
    exclusiveMinimum: Optional[float] = None
    maxLength: Optional[int] = Field(default=None, ge=0)
    minLength: Optional[int] = Field(default=None, ge=0)
    pattern: Optional[str] = None
    maxItems: Optional[int] = Field(default=None, ge=0)
    minItems: Optional[int] = Field(default=None, ge=0)
    uniqueItems: Optional[bool] = None
    maxContains: Optional[int] = Field(default=None, ge=0)
    minContains: Optional[int] = Field(default=None, ge=0)
    maxProperties: Optional[int] = Field(default=None, ge=0)
    minProperties: Optional[int] = Field(default=None, ge=0)
    required: Optional[list[str]] = None
    dependentRequired: Optional[dict[str, set[str]]] = None
    # format and string-encoded content
    format: Optional[str] = None
    contentEncoding: Optional[str] = None
    contentMediaType: Optional[str] = None
    contentSchema: Optional[SchemaOrBool] = None
    # meta-data annotations
    title: Optional[str] = None
    description: Optional[str] = None
    default: Optional[Any] = None
    deprecated: Optional[bool] = None
    readOnly: Optional[bool] = None
    writeOnly: Optional[bool] = None
    examples: Optional[list[Any]] = None
    # OpenAPI's Schema Object
    discriminator: Optional[Discriminator] = None
    xml: Optional[XML] = None
    externalDocs: Optional[ExternalDocumentation] = None
    example: Optional[Any] = None  # deprecated by OpenAPI 3.1 (use examples), still accepted


SchemaOrBool = Union[Schema, bool]
"""A JSON Schema is an object or a boolean."""


class Example(TypedDict, total=False):
    """An Example object (a TypedDict, as in FastAPI: ``openapi_examples={"one": {"value": ...}}``)."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]

    summary: Optional[str]
    description: Optional[str]
    value: Optional[Any]
    externalValue: Optional[AnyUrl]


class ParameterInType(Enum):
    query = "query"
    header = "header"
    path = "path"
    cookie = "cookie"


class Encoding(BaseModelWithConfig):
    contentType: Optional[str] = None
    headers: Optional[dict[str, Union[Header, Reference]]] = None
    style: Optional[str] = None
    explode: Optional[bool] = None
    allowReserved: Optional[bool] = None


class MediaType(BaseModelWithConfig):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    schema_: Optional[Union[Schema, Reference]] = Field(default=None, alias="schema")
    example: Optional[Any] = None
    examples: Optional[dict[str, Union[Example, Reference]]] = None
    encoding: Optional[dict[str, Encoding]] = None


class ParameterBase(BaseModelWithConfig):
    """What a Parameter and a Header object share."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    description: Optional[str] = None
    required: Optional[bool] = None
    deprecated: Optional[bool] = None
    style: Optional[str] = None
    explode: Optional[bool] = None
    allowReserved: Optional[bool] = None
    schema_: Optional[Union[Schema, Reference]] = Field(default=None, alias="schema")
    example: Optional[Any] = None
    examples: Optional[dict[str, Union[Example, Reference]]] = None
    content: Optional[dict[str, MediaType]] = None


class Parameter(ParameterBase):
    name: str
    in_: ParameterInType = Field(alias="in")


class Header(ParameterBase):
    pass


class RequestBody(BaseModelWithConfig):
    content: dict[str, MediaType]
    description: Optional[str] = None
    required: Optional[bool] = None


class Link(BaseModelWithConfig):
    operationRef: Optional[str] = None
    operationId: Optional[str] = None
    parameters: Optional[dict[str, Any]] = None
    requestBody: Optional[Any] = None
    description: Optional[str] = None
    server: Optional[Server] = None


class Response(BaseModelWithConfig):
    description: str
    headers: Optional[dict[str, Union[Header, Reference]]] = None
    content: Optional[dict[str, MediaType]] = None
    links: Optional[dict[str, Union[Link, Reference]]] = None


class Operation(BaseModelWithConfig):
    tags: Optional[list[str]] = None
    summary: Optional[str] = None
    description: Optional[str] = None
    externalDocs: Optional[ExternalDocumentation] = None
    operationId: Optional[str] = None
    parameters: Optional[list[Union[Parameter, Reference]]] = None
    requestBody: Optional[Union[RequestBody, Reference]] = None
    responses: Optional[dict[str, Union[Response, Any]]] = None  # Any: specification extensions
    callbacks: Optional[dict[str, Union[dict[str, PathItem], Reference]]] = None
    deprecated: Optional[bool] = None
    security: Optional[list[dict[str, list[str]]]] = None
    servers: Optional[list[Server]] = None


class PathItem(BaseModelWithConfig):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    ref: Optional[str] = Field(default=None, alias="$ref")
    summary: Optional[str] = None
    description: Optional[str] = None
    get: Optional[Operation] = None
    put: Optional[Operation] = None
    post: Optional[Operation] = None
    delete: Optional[Operation] = None
    options: Optional[Operation] = None
    head: Optional[Operation] = None
    patch: Optional[Operation] = None
    trace: Optional[Operation] = None
    servers: Optional[list[Server]] = None
    parameters: Optional[list[Union[Parameter, Reference]]] = None


class SecuritySchemeType(Enum):
    apiKey = "apiKey"
    http = "http"
    oauth2 = "oauth2"
    openIdConnect = "openIdConnect"


class SecurityBase(BaseModelWithConfig):
    """A Security Scheme object: its ``type`` (field `type_`) and description."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type_: SecuritySchemeType = Field(alias="type")
    description: Optional[str] = None


class APIKeyIn(Enum):
    query = "query"
    header = "header"
    cookie = "cookie"


class APIKey(SecurityBase):
    type_: SecuritySchemeType = Field(default=SecuritySchemeType.apiKey, alias="type")
    in_: APIKeyIn = Field(alias="in")
    name: str


class HTTPBase(SecurityBase):
    type_: SecuritySchemeType = Field(default=SecuritySchemeType.http, alias="type")
    scheme: str


class HTTPBearer(HTTPBase):
    scheme: Literal["bearer"] = "bearer"
    bearerFormat: Optional[str] = None


class OAuthFlow(BaseModelWithConfig):
    refreshUrl: Optional[str] = None
    scopes: dict[str, str] = Field(default_factory=dict)


class OAuthFlowImplicit(OAuthFlow):
    authorizationUrl: str


class OAuthFlowPassword(OAuthFlow):
    tokenUrl: str


class OAuthFlowClientCredentials(OAuthFlow):
    tokenUrl: str


class OAuthFlowAuthorizationCode(OAuthFlow):
    authorizationUrl: str
    tokenUrl: str


class OAuthFlows(BaseModelWithConfig):
    implicit: Optional[OAuthFlowImplicit] = None
    password: Optional[OAuthFlowPassword] = None
    clientCredentials: Optional[OAuthFlowClientCredentials] = None
    authorizationCode: Optional[OAuthFlowAuthorizationCode] = None


class OAuth2(SecurityBase):
    type_: SecuritySchemeType = Field(default=SecuritySchemeType.oauth2, alias="type")
    flows: OAuthFlows


class OpenIdConnect(SecurityBase):
    type_: SecuritySchemeType = Field(default=SecuritySchemeType.openIdConnect, alias="type")
    openIdConnectUrl: str


SecurityScheme = Union[APIKey, HTTPBase, OAuth2, OpenIdConnect, HTTPBearer]


class Components(BaseModelWithConfig):
    schemas: Optional[dict[str, Union[Schema, Reference]]] = None
    responses: Optional[dict[str, Union[Response, Reference]]] = None
    parameters: Optional[dict[str, Union[Parameter, Reference]]] = None
    examples: Optional[dict[str, Union[Example, Reference]]] = None
    requestBodies: Optional[dict[str, Union[RequestBody, Reference]]] = None
    headers: Optional[dict[str, Union[Header, Reference]]] = None
    securitySchemes: Optional[dict[str, Union[SecurityScheme, Reference]]] = None
    links: Optional[dict[str, Union[Link, Reference]]] = None
    callbacks: Optional[dict[str, Union[dict[str, PathItem], Reference, Any]]] = None
    pathItems: Optional[dict[str, Union[PathItem, Reference]]] = None


class Tag(BaseModelWithConfig):
    name: str
    description: Optional[str] = None
    externalDocs: Optional[ExternalDocumentation] = None


class OpenAPI(BaseModelWithConfig):
    """The whole document: ``OpenAPI(**app.openapi())`` validates a generated schema."""

    openapi: str
    info: Info
    jsonSchemaDialect: Optional[str] = None
    servers: Optional[list[Server]] = None
    paths: Optional[dict[str, Union[PathItem, Any]]] = None
    webhooks: Optional[dict[str, Union[PathItem, Reference]]] = None
    components: Optional[Components] = None
    security: Optional[list[dict[str, list[str]]]] = None
    tags: Optional[list[Tag]] = None
    externalDocs: Optional[ExternalDocumentation] = None


for _model in (Schema, Encoding, MediaType, ParameterBase, Parameter, Header, Operation, PathItem, Components,
               OpenAPI):
    _model.model_rebuild()
