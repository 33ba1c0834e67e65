# Response-phase policy: decided on the model's answer (after output redaction), before the
# answer or, for streams, its tool calls and final chunk reach the caller.
#
# Tool calls arrive with parsed arguments; arguments that were not JSON arrive as
# {"_invalid_json": true, "raw": "..."} so a rule can still decide on them.
package wardgate.response

decision := {
	"allow": count(reasons) == 0,
	"deny": reasons,
	"require_approval": require_approval,
	"redact": {},
	"route": {},
	"limits": {},
	"tags": tags,
} if {
	reasons := deny
}

tool_calls := [call |
	some call in input.response.tool_calls
	is_object(call)
	is_string(call.name)
]

# The same tool rules as the request phase, enforced on what the model actually called
# (by name_key and kind: a local_shell_call is a local_shell tool whatever its name).
deny contains reason if {
	some reason in data.wardgate.lib.tool_denials(tool_calls)
}

# The calls of high-stakes tools (policy.yaml: high_stakes, matched by name_key), each with
# its rule, found once for the three rules below. A team whose agents act only through the
# gateway's /mcp (team setting `high_stakes_at: mcp`) has them judged there, where the tool
# runs (package wardgate.mcp), and not a second time on the model's proposal.
high_stakes_calls := [{"call": call, "rule": rule, "invalid_json": invalid} |
	not _judged_at_mcp
	some call in tool_calls
	rule := data.wardgate.derived.high_stakes[call.name_key]
	is_object(rule)
	invalid := data.wardgate.lib.argument(call.arguments, "_invalid_json") == true
]

# High-stakes tools marked `deny: true` are never executed on an agent's word.
deny contains sprintf("tool '%s' is never allowed: %s", [item.call.name, why]) if {
	some item in high_stakes_calls
	item.rule.deny == true
	why := object.get(item.rule, "reason", "high-stakes tool")
}

# A high-stakes call whose arguments cannot be read cannot be checked against its threshold.
deny contains sprintf("the arguments of high-stakes tool call '%s' (%s) are not valid JSON", [object.get(item.call, "id", ""), item.call.name]) if {
	some item in high_stakes_calls
	item.invalid_json
	not item.rule.deny
}

# High-stakes tools above their argument threshold (or with the argument missing or not a
# number) wait for a human approver. The threshold applies to the absolute value: a negative
# transfer moves money too (the sign only says which way).
require_approval contains {
	"reason": sprintf("%s: %s=%s needs approval above %v", [why, key, _shown(value), limit]),
	"tool_call_id": object.get(call, "id", ""),
	"approvers": object.get(rule, "approvers", []),
	"ttl_s": object.get(rule, "ttl_s", data.wardgate.derived.approval_ttl_s),
} if {
	some item in high_stakes_calls
	not item.invalid_json
	rule := item.rule
	not rule.deny
	call := item.call
	key := object.get(rule, "argument", "")
	limit := object.get(rule, "above", 0)
	value := data.wardgate.lib.argument(call.arguments, key)
	not _within_threshold(value, limit)
	why := object.get(rule, "reason", sprintf("high-stakes tool '%s'", [call.name]))
}

_judged_at_mcp if data.wardgate.lib.team.high_stakes_at == "mcp"

_within_threshold(value, limit) if abs(data.wardgate.lib.number(value)) <= limit

# A value as the reason shows it, printed the same by every engine: regorus prints every
# number in full, OPA non-integers below 1e-4 or from 1e6, and any number from 1e15 with an
# exponent (reasons must be identical under every engine).
_shown(value) := sprintf("%v", [value]) if not is_number(value)

_shown(value) := sprintf("%v", [value]) if _prints_alike(value)

_shown(value) := sprintf("~%s", [format_int(value, 10)]) if {
	is_number(value)
	not _prints_alike(value)
	abs(value) >= 1
	abs(value) < 1e15
}

_shown(value) := "~0" if {
	is_number(value)
	not _prints_alike(value)
	abs(value) < 1
}

_shown(value) := "beyond 1e15" if {
	is_number(value)
	value >= 1e15
}

_shown(value) := "beyond -1e15" if {
	is_number(value)
	value <= -1e15
}

_prints_alike(x) if {
	is_number(x)
	x == floor(x)
	abs(x) < 1e15
}

_prints_alike(x) if {
	is_number(x)
	x != floor(x)
	abs(x) >= 0.0001
	abs(x) < 1000000
}

tags := {"tool_calls": count(tool_calls)}
