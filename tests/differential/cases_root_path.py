"""Differential cases of root_path (issue 14): root_path_app.py (the server's ``--root-path /api/v1``, as behind a
proxy that strips the prefix) and root_path_param_app.py (``FastAPI(root_path="/api/v1")``)."""

from __future__ import annotations

from cases import Case, case

CASES: list[Case] = [
    # the server's root path: the proxy stripped /api/v1, the app sees it in root_path, path and url
    case("root_path/root", "GET", "/"),
    case("root_path/item", "GET", "/items/3?q=1"),
    case("root_path/item-422", "GET", "/items/x"),
    case("root_path/url-for", "GET", "/users/"),
    case("root_path/redirect-slash-keeps-prefix", "GET", "/users"),
    case("root_path/redirect-slash-removed-keeps-prefix", "GET", "/items/3/"),
    case("root_path/prefix-sent-again-404", "GET", "/api/v1/items/3"),
    case("root_path/404", "GET", "/nowhere"),
    case("root_path/405", "DELETE", "/items/3"),
    # the app's root path: paths with and without the prefix both route
    case("root_path_param/root", "GET", "/"),
    case("root_path_param/root-under-prefix", "GET", "/api/v1/"),
    case("root_path_param/prefix-alone-redirects", "GET", "/api/v1"),
    case("root_path_param/item", "GET", "/items/3"),
    case("root_path_param/item-under-prefix", "GET", "/api/v1/items/3?q=1"),
    case("root_path_param/item-under-prefix-422", "GET", "/api/v1/items/x"),
    case("root_path_param/url-for", "GET", "/api/v1/users/"),
    case("root_path_param/redirect-slash-under-prefix", "GET", "/api/v1/users"),
    case("root_path_param/redirect-slash", "GET", "/users"),
    case("root_path_param/prefix-only-as-prefix", "GET", "/api/v1items/3"),
    case("root_path_param/literal-route-is-shadowed", "GET", "/api/v1/literal"),
    case("root_path_param/literal-route-twice", "GET", "/api/v1/api/v1/literal"),
    case("root_path_param/404-under-prefix", "GET", "/api/v1/nowhere"),
    case("root_path_param/405-under-prefix", "DELETE", "/api/v1/items/3"),
]
