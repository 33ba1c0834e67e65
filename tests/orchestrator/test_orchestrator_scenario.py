"""The support scenario end to end over real HTTP: denial, redaction, approval (hold and defer).

Depends on the gateway's policy (the delete_customer denial, the refund approval rule),
approvals (hold/defer, admin approve/deny, GET /v1/approvals/{id}), redaction (placeholders
restored for the caller) and audit (GET /admin/runs/{id}) being wired.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.admin_client import AdminClient
from orchestrator.events import CallRecord, Listener
from tests.orchestrator.conftest import make_config, run_reviewed

CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"


class Calls(Listener):
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def call_finished(self, record: CallRecord) -> None:
        self.records.append(record)


async def test_support_scenario_completes_with_the_denial_the_redactions_and_a_held_approval(
    hold_gateway, tmp_path: Path
):
    report, scenario, approver = await run_reviewed(make_config(hold_gateway, tmp_path / "o.db"))
    backend = scenario.backend

    assert report.status == "completed", report.to_dict()
    assert {s.id: s.status for s in report.steps} == {
        "research": "done",
        "refund": "done",
        "account": "denied",
        "reply": "done",
    }
    # The policy forbids delete_customer: the step is denied with the policy's reason, nothing was deleted.
    (denial,) = report.denials
    assert denial["step"] == "account" and denial["code"] == "policy_denied"
    assert any("delete_customer" in r for r in denial["reasons"])
    assert backend.ran("delete_customer") == 0 and "CUST-1042" in backend.customers
    # The $250 refund is above the $200 threshold: held until the reviewer approved it, then paid once.
    (approval,) = report.approvals
    assert approval["outcome"] == "approved" and approval["mode"] == "hold"
    assert "issue_refund" in approval["tools"] and approval["comment"]
    assert [d["status"] for d in approver.decided] == ["approved"]
    assert [r["amount"] for r in backend.refunds.values()] == [250.0]
    # The reply carries the customer's email and card: redacted for the model; the email is
    # restored into the send_email call, the card is not (no card goes into a tool call the
    # model writes unless redaction.actions.CREDIT_CARD.tool_arguments is on).
    (mail,) = backend.sent.values()
    assert mail["to"] == EMAIL and EMAIL in mail["body"] and "<EMAIL_ADDRESS" not in mail["body"]
    assert CARD not in mail["body"] and "<CREDIT_CARD_1>" in mail["body"]
    admin = AdminClient(hold_gateway.base_url, make_config(hold_gateway, tmp_path / "x.db").admin_key)
    timeline = await admin.run_timeline(report.run_id)
    await admin.close()
    redacted = [
        (s.get("agent_id"), (s.get("redaction") or {}).get("entities") or {}) for s in timeline["steps"]
    ]
    writer = [e for agent, e in redacted if agent == "writer"]
    assert writer and all(e.get("EMAIL_ADDRESS") and e.get("CREDIT_CARD") for e in writer)
    assert report.review and report.review["verdict"] in ("approve", "revise")
    assert all(t.executions == 1 for t in report.tools)


async def test_deferred_approval_is_polled_then_the_same_request_is_resent_with_its_id(
    defer_gateway, tmp_path: Path
):
    calls = Calls()
    report, scenario, _ = await run_reviewed(make_config(defer_gateway, tmp_path / "o.db"), listener=calls)

    assert report.status == "completed"
    (approval,) = report.approvals
    assert approval["mode"] == "defer" and approval["outcome"] == "approved"
    billing = [(r.status, r.code) for r in calls.records if r.agent == "billing"]
    # 409 approval_pending, then the re-send answered with the stored answer, then the summary call.
    assert billing == [(409, "approval_pending"), (200, None), (200, None)]
    assert len(scenario.backend.refunds) == 1 and scenario.backend.ran("issue_refund") == 1


async def test_a_denied_refund_is_reported_and_the_run_continues(hold_gateway, tmp_path: Path):
    report, scenario, approver = await run_reviewed(make_config(hold_gateway, tmp_path / "o.db"), deny=True)

    assert report.status == "completed"
    assert [d["status"] for d in approver.decided] == ["denied"]
    (approval,) = report.approvals
    assert approval["outcome"] == "denied" and approval["comment"] == "denied by the demo reviewer"
    # The reviewer's no removed the tool call: no refund, the step ends with the model's explanation.
    assert scenario.backend.ran("issue_refund") == 0 and not scenario.backend.refunds
    assert report.step("refund").status == "done" and not report.tool_runs("issue_refund")
    # The run went on: the reply was written and tells the customer the refund is not issued yet.
    assert report.step("reply").status == "done"
    (mail,) = scenario.backend.sent.values()
    assert "could not be issued yet" in mail["body"]
