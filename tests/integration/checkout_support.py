"""What the checkout tests share: one basket and its subtotal, in fen."""
from __future__ import annotations

# Two tees (apparel) and a cap (accessories) of one brand: 25,000 fen.
LINES = [
    {"lineId": "1", "sku": "TEE", "category": "apparel", "brand": "acme", "quantity": 2,
     "unitPrice": 10_000},
    {"lineId": "2", "sku": "CAP", "category": "acc", "brand": "acme", "quantity": 1,
     "unitPrice": 5_000},
]
SUBTOTAL = 25_000
