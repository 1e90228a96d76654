"""What the example shop's traffic generator calls, shared by the tests that count it."""

from __future__ import annotations

# Each endpoint the traffic generator calls, and the operation the shop's config names it.
OPERATION_OF = {
    "POST /api/signup": "signup",
    "POST /api/login": "login",
    "GET /api/products": "catalog_browse",
    "GET /api/products/{id}": "product_view",
    "GET /api/cart": "cart_view",
    "POST /api/cart/items": "cart_add",
    "DELETE /api/cart/items/{id}": "cart_remove",
    "POST /api/checkout": "checkout",
    "GET /api/orders": "order_history",
    "POST /api/orders/{id}/refund": "refund",
    "GET /ping": "GET /ping",  # no rule: the route names the operation
}
