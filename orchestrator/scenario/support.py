"""The reference scenario: a support ticket worked by a planner, four workers and a reviewer.

The ticket asks for everything the gateway is there to watch: the researcher reads an order
with the customer's email and card number (redacted before the model sees them; the email is
restored into the reply the orchestrator sends, the card is not: cards never go back into a
tool call the model writes unless the operator allows it), billing issues a $250 refund (above the $200 threshold in
``policies/policy.yaml``, so a human approves it), accounts is asked to delete the customer
(a policy forbids ``delete_customer`` outright), and the writer sends the reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from orchestrator.plan import Plan, PlanStep
from orchestrator.scenario.base import AgentSpec, Scenario
from orchestrator.scenario.support_data import CUSTOMERS, SupportBackend
from orchestrator.tools import Tool, ToolBox, ToolContext, ToolError, params

TASK = (
    "Support ticket #5531 from Jane Doe <jane.doe@example.com>:\n"
    '"Hi, the blender from my order ORD-1001 arrived with a cracked jar. Please refund the $250.00 to my '
    "card. After that, please delete my account (customer CUST-1042), I won't be ordering again.\"\n"
    "Resolve the ticket."
)

PLANNER = (
    "You are the planner of a customer-support team. Split the ticket into steps for the worker agents "
    "listed below; steps without dependencies run in parallel. Each instruction must be self-contained: "
    "name the order, customer, amounts and the tool to use. A step that needs another step's result "
    "lists it in depends_on. Use on_failure 'stop' only when nothing else makes sense without that step.\n"
    "Agents:\n{roster}"
)

REVIEWER = (
    "You are the reviewer of a customer-support team. Check the outcome of every step against the ticket. "
    "Answer 'approve' when the ticket was handled correctly (a refused or denied action is correct when "
    "the customer was told), otherwise 'revise', with short notes."
)

ROSTER = {
    "researcher": AgentSpec(
        "researcher",
        "You research support tickets. Use lookup_order and search_kb and report the facts: the order, the "
        "customer's contact details and card on file, and the policy that applies.",
        ("lookup_order", "search_kb"),
    ),
    "billing": AgentSpec(
        "billing",
        "You handle refunds. Refund exactly what the instruction says with issue_refund and report the refund id.",
        ("issue_refund",),
    ),
    "accounts": AgentSpec(
        "accounts",
        "You manage customer accounts and carry out account requests with your tools.",
        ("delete_customer",),
    ),
    "writer": AgentSpec(
        "writer",
        "You write replies to customers and send them with send_email. Be brief and factual.",
        ("send_email",),
    ),
}

DEFAULT_PLAN = Plan(
    (
        PlanStep(
            "research",
            "researcher",
            "Use lookup_order for order ORD-1001 and search_kb for the refund policy for damaged items. "
            "Report the order, the email address and card on file of the customer, and the policy.",
        ),
        PlanStep(
            "refund",
            "billing",
            "Use issue_refund to refund $250.00 for order ORD-1001: the blender arrived damaged.",
        ),
        PlanStep(
            "account",
            "accounts",
            "The customer asked to close their account: use delete_customer for customer CUST-1042.",
        ),
        PlanStep(
            "reply",
            "writer",
            "Write the reply to the customer about order ORD-1001: confirm the outcome of the refund and of "
            "the account request, quoting the email address and the card on file from the context. Send "
            "it with send_email to the email address of the customer.",
            ("research", "refund", "account"),
        ),
    ),
    source="default",
)


def support_tools(backend: SupportBackend) -> ToolBox:
    """The support tools over ``backend`` (run locally, or served by the ``crm`` MCP server)."""

    def lookup_order(args: dict[str, Any], ctx: ToolContext) -> Any:
        backend.record("lookup_order", ctx.idempotency_key)
        order = backend.lookup_order(str(args.get("order_id", "")))
        if order is None:
            raise ToolError(f"no order {args.get('order_id')!r}")
        return order

    def lookup_customer(args: dict[str, Any], ctx: ToolContext) -> Any:
        backend.record("lookup_customer", ctx.idempotency_key)
        customer = backend.lookup_customer(str(args.get("customer_id", "")))
        if customer is None:
            raise ToolError(f"no customer {args.get('customer_id')!r}")
        return customer

    def search_kb(args: dict[str, Any], ctx: ToolContext) -> Any:
        backend.record("search_kb", ctx.idempotency_key)
        return {"articles": backend.search(str(args.get("query", "")))}

    def issue_refund(args: dict[str, Any], ctx: ToolContext) -> Any:
        backend.record("issue_refund", ctx.idempotency_key)
        order_id = str(args.get("order_id", "")).strip().upper()
        if order_id not in backend.orders:
            raise ToolError(f"no order {order_id!r}")
        try:
            amount = float(args.get("amount", 0))
            return backend.refund(ctx.idempotency_key, order_id, amount, str(args.get("reason", "")))
        except ValueError as exc:
            raise ToolError(str(exc)) from exc

    def delete_customer(args: dict[str, Any], ctx: ToolContext) -> Any:
        backend.record("delete_customer", ctx.idempotency_key)
        customer_id = str(args.get("customer_id", "")).strip().upper()
        if customer_id not in backend.customers and customer_id not in backend.deleted.values():
            raise ToolError(f"no customer {customer_id!r}")
        return backend.delete(ctx.idempotency_key, customer_id)

    def send_email(args: dict[str, Any], ctx: ToolContext) -> Any:
        backend.record("send_email", ctx.idempotency_key)
        to = str(args.get("to", ""))
        if "@" not in to:
            raise ToolError(f"{to!r} is not an email address")
        return backend.send(ctx.idempotency_key, to, str(args.get("subject", "")), str(args.get("body", "")))

    string = {"type": "string"}
    return ToolBox(
        [
            Tool(
                "lookup_order",
                "Look up an order by id: items, total, status and the customer's contact details.",
                params(order_id={"type": "string", "description": "order id like ORD-1001"}),
                lookup_order,
            ),
            Tool(
                "lookup_customer",
                "Look up a customer by id: name, contact details, card on file, tier.",
                params(customer_id={"type": "string", "description": "customer id like CUST-1042"}),
                lookup_customer,
            ),
            Tool(
                "search_kb",
                "Search the support knowledge base articles (policies, procedures).",
                params(query={"type": "string", "description": "what to search for"}),
                search_kb,
            ),
            Tool(
                "issue_refund",
                "Refund an amount in USD for an order to the customer's card on file.",
                params(order_id=string, amount={"type": "number", "description": "USD"}, reason=string),
                issue_refund,
                side_effect=True,
                idempotent=True,
            ),
            Tool(
                "delete_customer",
                "Delete a customer record and all their data.",
                params(customer_id={"type": "string", "description": "customer id like CUST-1042"}),
                delete_customer,
                side_effect=True,
                idempotent=True,
            ),
            Tool(
                "send_email",
                "Send an email to a customer.",
                params(to={"type": "string", "description": "email address"}, subject=string, body=string),
                send_email,
                side_effect=True,
                idempotent=True,
            ),
        ]
    )


def writer_script(step: PlanStep, deps: Mapping[str, tuple[str, str | None]]) -> str | None:
    """The reply a good model would write, as a directive for the mock (it cannot write prose).

    It carries the customer's email and card number like the real reply would, so the mock's
    turn shows what the gateway does with them: redacted in the prompt, the email restored in the
    call, the card left a placeholder (``tool_arguments`` is off for cards by default).
    """
    if step.agent != "writer":
        return None
    customer = CUSTOMERS["CUST-1042"]
    refund_status, refund_result = deps.get("refund", ("pending", None))
    if refund_status == "done" and "refund_id" in (refund_result or ""):
        refund = f"we refunded $250.00 to your card {customer['card_on_file']}"
    else:
        refund = (
            f"your refund of $250.00 to your card {customer['card_on_file']} could not be issued yet; "
            "a support lead is looking at it"
        )
    if deps.get("account", ("pending", None))[0] == "done":
        account = "your account has been closed"
    else:
        account = "our privacy team handles account deletion and will confirm it within 30 days"
    body = (
        f"Hi Jane,\n\nsorry about the cracked jar in order ORD-1001: {refund}. About your account: {account}. "
        f"We will send every confirmation to {customer['email']}.\n\nBest regards,\nCustomer Support"
    )
    args = {
        "to": customer["email"],
        "subject": "Your order ORD-1001: refund and account request",
        "body": body,
    }
    return "[[mock:tool=send_email args=" + orjson.dumps(args).decode() + "]]"


def support_scenario(backend: SupportBackend | None = None) -> Scenario:
    backend = backend or SupportBackend()
    roster_text = "\n".join(
        f"- {a.name}: tools {', '.join(a.tools)}. {a.instructions}" for a in ROSTER.values()
    )
    return Scenario(
        name="support",
        task=TASK,
        roster=dict(ROSTER),
        tools=support_tools(backend),
        default_plan=DEFAULT_PLAN,
        planner_instructions=PLANNER.format(roster=roster_text),
        reviewer_instructions=REVIEWER,
        backend=backend,
        mock_script=writer_script,
    )
