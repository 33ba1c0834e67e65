# Helpers shared by the request and response policies.
#
# Settings live in policies/policy.yaml, loaded as data.wardgate.policy. Every helper is
# total: an odd input (a missing principal, a non-string model, arguments that were not
# JSON) makes a helper undefined or false, never a runtime error, so a policy decides on
# every input instead of failing.
#
# Performance notes (regorus, the embedded engine, interprets Rego): the policies reference
# rules here by full path (data.wardgate.lib.team, not lib.team) because regorus evaluates
# the whole package when a rule is reached through an import alias; whatever depends on the
# settings alone is computed once per revision in derived.rego (data.wardgate.derived);
# helpers that run per tool or per message are rules or single function calls, not nested
# function calls; and since every builtin call (glob.match above all) costs about a
# microsecond, per-tool work is filtered first by one cheap test (tool_prefixes,
# high_stakes_calls) instead of trying every pattern or rule on every tool.
package wardgate.lib

team_name := name if {
	name := input.principal.team
	is_string(name)
} else := ""

roles := names if {
	names := input.principal.roles
	is_array(names)
} else := []

# The caller's team settings: the team's entry over the defaults, key by key (derived.teams).
team := object.get(data.wardgate.derived.teams, team_name, data.wardgate.derived.defaults)

has_any_role(wanted) if {
	some role in wanted
	role in roles
}

matches_any(patterns, name) if {
	is_string(name)
	some pattern in patterns
	glob.match(pattern, null, name)
}

model_allowed(model) if matches_any(object.get(team, "models", ["*"]), model)

# The label of a tool result: its tool_call_id, or (legacy role "function") its name.
result_label(result) := result.tool_call_id if result.tool_call_id != "" else := object.get(result, "name", "")

# The plain text of a message content: a string, or the text parts of a content array.
text(content) := content if is_string(content)

text(content) := concat("\n", [part.text |
	some part in content
	is_object(part)
	is_string(part.text)
]) if is_array(content)

# Why the caller may not use `tools` (objects with name, name_key and kind, as in
# input.request.tools and input.response.tool_calls); empty when it may use them all. A rule
# denies a tool whose name_key matches one of its `tools` patterns, or whose kind is one of
# its `kinds` (built-in tools: any name). Reasons name the tool as it was spelled.
tool_denials(tools) := {reason |
	some tool in tools
	is_string(tool.name_key)
	strings.any_prefix_match(tool.name_key, data.wardgate.derived.tool_prefixes)
	glob.match(data.wardgate.derived.tool_patterns_glob, null, tool.name_key)
	some rule in data.wardgate.derived.tool_rules
	some pattern in rule.tools
	glob.match(pattern, null, tool.name_key)
	not has_any_role(object.get(rule, "unless_roles", []))
	why := object.get(rule, "reason", "denied by the tool policy")
	reason := sprintf("tool '%s' is not allowed for this caller: %s", [tool.name, why])
} | {reason |
	some tool in tools
	some rule in data.wardgate.derived.kind_rules[tool.kind]
	not has_any_role(object.get(rule, "unless_roles", []))
	not _name_matches(rule, tool.name_key) # one reason per tool and rule
	why := object.get(rule, "reason", "denied by the tool policy")
	reason := sprintf("tool '%s' (built-in %s) is not allowed for this caller: %s", [tool.name, tool.kind, why])
}

_name_matches(rule, key) if {
	some pattern in rule.tools
	glob.match(pattern, null, key)
}

# A number as the gateway gives it: JSON numbers and numeric strings of tool-call arguments
# arrive as float64-representable numbers (README "Numbers"); any other string is no number.
number(x) := x if is_number(x)

# An argument of a tool call, or null when the arguments do not hold it.
argument(args, key) := value if {
	is_object(args)
	value := args[key]
} else := null

business_hours_only if team_name in object.get(data.wardgate.derived.business_hours, "teams", [])

business_hours_only if {
	some key, value in object.get(data.wardgate.derived.business_hours, "tags", {})
	input.principal.tags[key] == value
}

within_business_hours if {
	hours := data.wardgate.derived.business_hours
	input.time.weekday in object.get(hours, "weekdays", [])
	input.time.hour >= object.get(hours, "start_hour", 0)
	input.time.hour < object.get(hours, "end_hour", 24)
}
