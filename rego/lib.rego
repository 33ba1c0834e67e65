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

# The plain text of a message content: a string, or the text parts of a content array.
text(content) := content if is_string(content)

text(content) := concat("\n", [part.text |
	some part in content
	is_object(part)
	is_string(part.text)
]) if is_array(content)

# Why the caller may not use the tools named in `names` (empty when it may use them all).
tool_denials(names) := {reason |
	some name in names
	is_string(name)
	strings.any_prefix_match(name, data.wardgate.derived.tool_prefixes)
	glob.match(data.wardgate.derived.tool_patterns_glob, null, name)
	some rule in data.wardgate.derived.tool_rules
	some pattern in rule.tools
	glob.match(pattern, null, name)
	not has_any_role(object.get(rule, "unless_roles", []))
	why := object.get(rule, "reason", "denied by the tool policy")
	reason := sprintf("tool '%s' is not allowed for this caller: %s", [name, why])
}

# A JSON number, or a string holding a plain decimal number (agents send both).
number(x) := x if is_number(x)

number(x) := to_number(x) if {
	is_string(x)
	regex.match(`^-?[0-9]+(\.[0-9]+)?$`, x)
}

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
