# Tests of the response policy, with their own settings (independent of policies/*.yaml).
package wardgate.response_test

import data.wardgate.response

settings := {
	"defaults": {"models": ["*"]},
	"tool_rules": [{"tools": ["shell*"], "kinds": ["local_shell", "shell"], "unless_roles": ["ops"], "reason": "ops only"}],
	"approval_ttl_s": 600,
	"high_stakes": {
		"transfer_funds": {"argument": "amount", "above": 1000, "approvers": ["finance"], "reason": "big transfer"},
		"issue_refund": {"argument": "amount", "above": 200, "ttl_s": 900},
		"delete_customer": {"deny": true, "reason": "never by an agent"},
	},
}

answer(tool_calls) := {
	"version": 1,
	"principal": {"key_id": "k1", "team": "demo", "roles": [], "tags": {}},
	"request": {"endpoint": "chat.completions", "model": "mock-chat", "messages": [], "tools": [], "params": {}},
	"response": {"content": "", "tool_calls": tool_calls, "finish_reason": "tool_calls", "usage": null},
}

call(id, name, arguments) := {"id": id, "type": "function", "kind": "function", "name": name, "name_key": lower(name), "arguments": arguments}

# A call as the gateway gives it for a spelling whose key is `key` (gateway/policy/textkey.py).
spelled(id, name, key, arguments) := object.union(call(id, name, arguments), {"name_key": key})

decide(tool_calls) := d if {
	d := response.decision with input as answer(tool_calls) with data.wardgate.policy as settings
}

test_text_answer_is_allowed if {
	d := response.decision with input as object.union(answer([]), {"response": {"content": "hi", "tool_calls": []}})
		with data.wardgate.policy as settings
	d.allow
	count(d.require_approval) == 0
}

test_small_transfer_is_allowed if {
	d := decide([call("c1", "transfer_funds", {"amount": 50, "to": "acme"})])
	d.allow
	count(d.require_approval) == 0
}

test_transfer_above_threshold_requires_approval if {
	d := decide([call("c1", "transfer_funds", {"amount": 5000})])
	d.allow
	d.require_approval == {{
		"reason": "big transfer: amount=5000 needs approval above 1000",
		"tool_call_id": "c1",
		"approvers": ["finance"],
		"ttl_s": 600,
	}}
}

# The gateway turns numeric strings into numbers; a string that still arrives is no plain
# number ("NaN", "1,000", "0012"), and a transfer whose amount cannot be read waits for a human.
test_amount_that_is_no_number_requires_approval if {
	every amount in ["NaN", "inf", "1,000", "0012", "+5", "5000 USD"] {
		d := decide([call("c1", "transfer_funds", {"amount": amount})])
		count(d.require_approval) == 1
	}
}

test_negative_amount_is_compared_by_absolute_value if {
	d := decide([call("c1", "transfer_funds", {"amount": -5000})])
	[item | some item in d.require_approval][0].reason == "big transfer: amount=-5000 needs approval above 1000"
	count(decide([call("c1", "transfer_funds", {"amount": -999.5})]).require_approval) == 0
	count(decide([call("c1", "transfer_funds", {"amount": -1000.0000000000001})]).require_approval) == 1
}

test_threshold_boundaries if {
	count(decide([call("c1", "transfer_funds", {"amount": 1000})]).require_approval) == 0
	count(decide([call("c1", "transfer_funds", {"amount": 1000.0000000000001})]).require_approval) == 1
	count(decide([call("c1", "transfer_funds", {"amount": 1e300})]).require_approval) == 1
	count(decide([call("c1", "transfer_funds", {"amount": 5e-324})]).require_approval) == 0
	count(decide([call("c1", "transfer_funds", {"amount": 9007199254740993})]).require_approval) == 1
}

test_high_stakes_tools_are_matched_by_key if {
	d := decide([
		spelled("a", "Transfer_Funds", "transfer_funds", {"amount": 5000}),
		spelled("b", "tr\u0430nsfer_funds ", "transfer_funds", {"amount": 5000}),
		spelled("c", "\uff54ransfer_funds", "transfer_funds", {"amount": 5000}),
	])
	{item.tool_call_id | some item in d.require_approval} == {"a", "b", "c"}
	d2 := decide([spelled("d", "Delete_Customer", "delete_customer", {"id": 1})])
	d2.deny == {"tool 'Delete_Customer' is never allowed: never by an agent"}
}

test_built_in_calls_are_denied_by_kind if {
	shell_call := {"id": "ls1", "type": "local_shell_call", "kind": "local_shell", "name": "local_shell_call", "name_key": "local_shell_call", "arguments": {"type": "exec", "command": ["rm", "-rf", "/"]}}
	d := decide([shell_call])
	d.deny == {"tool 'local_shell_call' (built-in local_shell) is not allowed for this caller: ops only"}
}

test_missing_amount_requires_approval if {
	d := decide([call("c1", "transfer_funds", {"to": "acme"})])
	[item | some item in d.require_approval][0].reason == "big transfer: amount=null needs approval above 1000"
}

test_refund_threshold_and_ttl_come_from_data if {
	d := decide([call("c9", "issue_refund", {"amount": 250})])
	d.require_approval == {{
		"reason": "high-stakes tool 'issue_refund': amount=250 needs approval above 200",
		"tool_call_id": "c9",
		"approvers": [],
		"ttl_s": 900,
	}}
}

test_delete_customer_is_denied_outright if {
	d := decide([call("c2", "delete_customer", {"id": 7})])
	not d.allow
	d.deny == {"tool 'delete_customer' is never allowed: never by an agent"}
	count(d.require_approval) == 0
}

test_invalid_json_arguments_of_high_stakes_tool_are_denied if {
	d := decide([call("c3", "transfer_funds", {"_invalid_json": true, "raw": "{amount: lots"})])
	d.deny == {"the arguments of high-stakes tool call 'c3' (transfer_funds) are not valid JSON"}
}

test_invalid_json_arguments_of_ordinary_tool_are_allowed if {
	d := decide([call("c4", "lookup", {"_invalid_json": true, "raw": "nope"})])
	d.allow
}

test_non_object_arguments_still_decided if {
	d := decide([call("c5", "transfer_funds", [1, 2, 3])])
	count(d.require_approval) == 1
}

test_denied_tool_call_is_denied if {
	d := decide([call("c6", "shell_exec", {"cmd": "rm -rf /"})])
	d.deny == {"tool 'shell_exec' is not allowed for this caller: ops only"}
}

test_denied_tool_call_is_allowed_with_role if {
	inp := object.union(answer([call("c6", "shell", {})]), {"principal": {"roles": ["ops"]}})
	d := response.decision with input as inp with data.wardgate.policy as settings
	d.allow
}

test_each_high_stakes_call_is_listed if {
	d := decide([
		call("a", "transfer_funds", {"amount": 2000}),
		call("b", "transfer_funds", {"amount": 3000}),
		call("c", "lookup", {}),
	])
	{item.tool_call_id | some item in d.require_approval} == {"a", "b"}
	d.tags.tool_calls == 3
}

reason_for(amount) := [item.reason |
	some item in decide([call("c", "transfer_funds", {"amount": amount})]).require_approval
][0]

test_reasons_print_amounts_alike_under_every_engine if {
	reason_for(5000) == "big transfer: amount=5000 needs approval above 1000"
	reason_for(1000.25) == "big transfer: amount=1000.25 needs approval above 1000"
	reason_for(1000000.5) == "big transfer: amount=~1000000 needs approval above 1000"
	reason_for(-2e15) == "big transfer: amount=beyond -1e15 needs approval above 1000"
	reason_for(1e300) == "big transfer: amount=beyond 1e15 needs approval above 1000"
	reason_for("NaN") == "big transfer: amount=NaN needs approval above 1000"
}

# A team acting through /mcp has its high-stakes tools judged there, not on the proposal;
# the tool rules still apply to what its model calls.
test_a_team_acting_through_mcp_is_not_judged_twice if {
	mcp_settings := object.union(settings, {"teams": {"demo": {"high_stakes_at": "mcp"}}})
	calls := [
		call("c1", "transfer_funds", {"amount": 5000}),
		call("c2", "delete_customer", {"customer_id": "C1"}),
		call("c3", "shell", {}),
	]
	d := response.decision with input as answer(calls) with data.wardgate.policy as mcp_settings
	count(d.require_approval) == 0
	d.deny == {"tool 'shell' is not allowed for this caller: ops only"}
	count(decide(calls).require_approval) == 1
}
