"""Fake systems behind the support tools: an order database, a knowledge base, payments,
a CRM and an outbox, all in memory.

``SupportBackend`` stands for the external systems an agent acts on. Like a payment API it
deduplicates side effects by idempotency key, and it counts every invocation, so tests can
prove that no tool call ran twice even when the orchestrator crashed and resumed (the
backend outlives the orchestrator, as a real payment provider would).
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

CUSTOMERS: dict[str, dict[str, Any]] = {
    "CUST-1042": {
        "name": "Jane Doe",
        "email": "jane.doe@example.com",
        "card_on_file": "4111 1111 1111 1111",
        "since": "2019-04-02",
        "tier": "gold",
    },
    "CUST-2077": {
        "name": "Omar Haddad",
        "email": "omar.haddad@example.org",
        "card_on_file": "5555 5555 5555 4444",
        "since": "2023-11-20",
        "tier": "standard",
    },
}

ORDERS: dict[str, dict[str, Any]] = {
    "ORD-1001": {
        "customer_id": "CUST-1042",
        "status": "delivered",
        "delivered": "2025-03-14",
        "total": 250.00,
        "items": [{"sku": "BLND-500", "name": "Blender Pro 500", "qty": 1, "price": 250.00}],
        "note": "customer reports the jar arrived cracked",
    },
    "ORD-1002": {
        "customer_id": "CUST-2077",
        "status": "shipped",
        "delivered": None,
        "total": 89.90,
        "items": [{"sku": "KTL-12", "name": "Kettle 1.2l", "qty": 1, "price": 89.90}],
        "note": "",
    },
}

KNOWLEDGE_BASE: list[dict[str, str]] = [
    {
        "id": "KB-12",
        "title": "Damaged or defective items",
        "text": "Items that arrive damaged are refunded in full to the original payment method within 5 business "
        "days; no return is needed under $300. Refunds above $200 are reviewed by a support lead first.",
    },
    {
        "id": "KB-07",
        "title": "Closing a customer account",
        "text": "Customers may ask to close their account. Agents never delete customer records themselves: the "
        "privacy team handles deletion requests within 30 days and confirms by email.",
    },
    {
        "id": "KB-03",
        "title": "Shipping times",
        "text": "Standard shipping takes 3 to 5 business days; express shipping 1 to 2 business days.",
    },
]

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return {w[:6] for w in _WORD.findall(text.lower()) if len(w) > 2}


@dataclass
class SupportBackend:
    customers: dict[str, dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(CUSTOMERS))
    orders: dict[str, dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(ORDERS))
    articles: list[dict[str, str]] = field(default_factory=lambda: copy.deepcopy(KNOWLEDGE_BASE))
    #: Side effects, keyed by idempotency key.
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: dict[str, str] = field(default_factory=dict)
    #: Every time a tool function ran, by (tool, idempotency key) — repeats included.
    invocations: Counter[tuple[str, str]] = field(default_factory=Counter)

    def record(self, tool: str, key: str) -> None:
        self.invocations[(tool, key)] += 1

    def ran(self, tool: str) -> int:
        """How many times ``tool`` ran, whatever the key."""
        return sum(n for (name, _), n in self.invocations.items() if name == tool)

    # -- reads -----------------------------------------------------------------------
    def lookup_order(self, order_id: str) -> dict[str, Any] | None:
        order = self.orders.get(order_id.strip().upper())
        if order is None:
            return None
        customer = self.customers.get(order["customer_id"], {"name": "(deleted customer)"})
        # Compact, contact details first: models (and the mock's 300-character quotes) read the start.
        return {
            "order_id": order_id.strip().upper(),
            "customer": customer.get("name"),
            "customer_id": order["customer_id"],
            "email": customer.get("email"),
            "card_on_file": customer.get("card_on_file"),
            "total": order["total"],
            "status": order["status"],
            "items": [i["name"] for i in order["items"]],
            "note": order["note"],
        }

    def lookup_customer(self, customer_id: str) -> dict[str, Any] | None:
        key = customer_id.strip().upper()
        customer = self.customers.get(key)
        return None if customer is None else {"customer_id": key, **customer}

    def search(self, query: str, limit: int = 2) -> list[dict[str, str]]:
        wanted = _words(query)
        scored = sorted(
            ((len(wanted & _words(a["title"] + " " + a["text"])), a) for a in self.articles),
            key=lambda x: -x[0],
        )
        return [a for score, a in scored[:limit] if score > 0]

    # -- side effects (idempotent by key) ---------------------------------------------
    def refund(self, key: str, order_id: str, amount: float, reason: str) -> dict[str, Any]:
        if key in self.refunds:
            return self.refunds[key]
        order = self.orders[order_id]
        already = sum(r["amount"] for r in self.refunds.values() if r["order_id"] == order_id)
        if amount <= 0 or already + amount > order["total"] + 1e-9:
            raise ValueError(
                f"refund of {amount:.2f} exceeds what is left on {order_id} ({order['total'] - already:.2f})"
            )
        card = self.customers.get(order["customer_id"], {}).get("card_on_file", "")
        refund = {
            "refund_id": "RF-" + hashlib.sha256(key.encode()).hexdigest()[:8].upper(),
            "order_id": order_id,
            "amount": round(amount, 2),
            "currency": "USD",
            "reason": reason,
            "status": "issued",
            "card_last4": card[-4:],
        }
        self.refunds[key] = refund
        return refund

    def delete(self, key: str, customer_id: str) -> dict[str, Any]:
        if key not in self.deleted:
            self.customers.pop(customer_id, None)
            self.deleted[key] = customer_id
        return {"customer_id": self.deleted[key], "status": "deleted"}

    def send(self, key: str, to: str, subject: str, body: str) -> dict[str, Any]:
        if key not in self.sent:
            message_id = "MSG-" + hashlib.sha256(key.encode()).hexdigest()[:10].upper()
            self.sent[key] = {"message_id": message_id, "to": to, "subject": subject, "body": body}
        mail = self.sent[key]
        return {"message_id": mail["message_id"], "to": mail["to"], "status": "sent"}
