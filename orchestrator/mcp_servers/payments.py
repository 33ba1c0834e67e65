"""The ``payments`` sample MCP server: transfers and balances over an in-memory ledger.

``transfer_funds(amount, currency, to_account)`` moves money from the operating account
(``ACC-OPS``) to another account; ``get_balance(account)`` reads one. Like a payment API,
a transfer is deduplicated by its idempotency key (``ToolContext``), so a retried call
never pays twice. Wardgate's shipped policy (``high_stakes`` in ``policies/policy.yaml``)
holds ``transfer_funds`` above 1,000 for a finance approver before it gets here.
"""

from __future__ import annotations

import copy
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from orchestrator.mcp_servers.toolbox_server import ToolBoxServer
from orchestrator.tools import Tool, ToolBox, ToolContext, ToolError, params

OPERATING = "ACC-OPS"
ACCOUNTS: dict[str, dict[str, Any]] = {
    OPERATING: {"owner": "Example Shop Ltd", "balance": 50_000.00, "currency": "EUR"},
    "ACC-2001": {"owner": "Acme Supplies GmbH", "balance": 1_250.00, "currency": "EUR"},
    "ACC-2002": {"owner": "Blue Kettle Logistics", "balance": 310.00, "currency": "EUR"},
}


@dataclass
class PaymentsBackend:
    accounts: dict[str, dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(ACCOUNTS))
    #: Executed transfers by idempotency key.
    transfers: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Every time a tool function ran, by (tool, idempotency key): repeats included.
    invocations: Counter[tuple[str, str]] = field(default_factory=Counter)

    def record(self, tool: str, key: str) -> None:
        self.invocations[(tool, key)] += 1

    def ran(self, tool: str) -> int:
        return sum(n for (name, _), n in self.invocations.items() if name == tool)

    def balance(self, account: str) -> dict[str, Any] | None:
        acc = self.accounts.get(account.strip().upper())
        if acc is None:
            return None
        return {
            "account": account.strip().upper(),
            "balance": round(acc["balance"], 2),
            "currency": acc["currency"],
        }

    def transfer(self, key: str, amount: float, currency: str, to_account: str) -> dict[str, Any]:
        if key in self.transfers:
            return self.transfers[key]
        target = to_account.strip().upper()
        source = self.accounts[OPERATING]
        if target not in self.accounts or target == OPERATING:
            raise ToolError(f"no account {to_account!r} to transfer to")
        if currency.strip().upper() != source["currency"]:
            raise ToolError(f"the operating account holds {source['currency']}, not {currency!r}")
        if not amount > 0:
            raise ToolError(f"a transfer moves a positive amount, not {amount:g}")
        if amount > source["balance"] + 1e-9:
            raise ToolError(f"insufficient funds: {source['balance']:.2f} {source['currency']} available")
        source["balance"] -= amount
        self.accounts[target]["balance"] += amount
        done = {
            "transfer_id": "TR-" + hashlib.sha256(key.encode()).hexdigest()[:8].upper(),
            "amount": round(amount, 2),
            "currency": source["currency"],
            "to_account": target,
            "status": "executed",
        }
        self.transfers[key] = done
        return done


def payments_tools(backend: PaymentsBackend) -> ToolBox:
    def transfer_funds(args: dict[str, Any], ctx: ToolContext) -> Any:
        backend.record("transfer_funds", ctx.idempotency_key)
        try:
            amount = float(args.get("amount", 0))
        except (TypeError, ValueError) as exc:
            raise ToolError(f"amount {args.get('amount')!r} is not a number") from exc
        return backend.transfer(
            ctx.idempotency_key, amount, str(args.get("currency", "")), str(args.get("to_account", ""))
        )

    def get_balance(args: dict[str, Any], ctx: ToolContext) -> Any:
        backend.record("get_balance", ctx.idempotency_key)
        found = backend.balance(str(args.get("account", "")))
        if found is None:
            raise ToolError(f"no account {args.get('account')!r}")
        return found

    return ToolBox(
        [
            Tool(
                "transfer_funds",
                "Transfer an amount from the company's operating account to another account.",
                params(
                    amount={"type": "number", "description": "amount to transfer"},
                    currency={"type": "string", "description": "ISO currency code, e.g. EUR"},
                    to_account={"type": "string", "description": "account id like ACC-2001"},
                ),
                transfer_funds,
                side_effect=True,
                idempotent=True,
            ),
            Tool(
                "get_balance",
                "Read the balance of an account.",
                params(account={"type": "string", "description": "account id like ACC-OPS"}),
                get_balance,
            ),
        ]
    )


def payments_server(backend: PaymentsBackend | None = None) -> ToolBoxServer:
    backend = backend or PaymentsBackend()
    return ToolBoxServer(
        "payments",
        payments_tools(backend),
        backend,
        instructions="Company payments: transfers from the operating account and balances.",
    )
