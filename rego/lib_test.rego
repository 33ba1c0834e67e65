package wardgate.lib_test

import data.wardgate.lib

test_text_of_string_content if lib.text("hello") == "hello"

test_text_of_content_parts_skips_non_text if {
	parts := [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}, "odd", {"type": "text", "text": "b"}]
	lib.text(parts) == "a\nb"
}

test_text_of_null_is_undefined if not lib.text(null)

test_glob_star_crosses_dots if lib.matches_any(["gpt-4*"], "gpt-4.1-mini")

test_glob_does_not_match_other_names if not lib.matches_any(["mock-*"], "gpt-4o")

test_glob_needs_a_string_name if not lib.matches_any(["*"], 7)

# The gateway turns numeric strings into numbers (README "Numbers"); what still is a string
# here is not a plain number, and no engine-dependent to_number reads it.
test_number_reads_numbers_only if {
	lib.number(12) == 12
	lib.number(-12.5) == -12.5
	not lib.number("12.5")
	not lib.number("NaN")
	not lib.number("12 dollars")
	not lib.number(null)
}

tool(name) := {"type": "function", "kind": "function", "name": name, "name_key": lower(name)}

test_result_label_is_the_call_id_or_the_function_name if {
	lib.result_label({"tool_call_id": "c1", "name": ""}) == "c1"
	lib.result_label({"tool_call_id": "", "name": "fetch"}) == "fetch"
}

test_argument_of_non_object_is_null if {
	lib.argument([1, 2], "amount") == null
	lib.argument({"amount": 3}, "amount") == 3
	lib.argument({}, "amount") == null
}

test_tool_denials_name_each_denied_tool if {
	settings := {"tool_rules": [
		{"tools": ["shell*"], "unless_roles": ["ops"], "reason": "ops only"},
		{"tools": ["db_*"], "reason": "no db"},
	]}
	reasons := lib.tool_denials([tool("shell"), tool("lookup"), tool("db_read"), {"name": 7}]) with input.principal as {"roles": ["dev"]}
		with data.wardgate.policy as settings
	reasons == {"tool 'shell' is not allowed for this caller: ops only", "tool 'db_read' is not allowed for this caller: no db"}
}

test_tool_denials_respect_unless_roles if {
	settings := {"tool_rules": [{"tools": ["shell*"], "unless_roles": ["ops"]}]}
	reasons := lib.tool_denials([tool("shell")]) with input.principal as {"roles": ["ops"]} with data.wardgate.policy as settings
	count(reasons) == 0
}

test_team_settings_override_defaults if {
	settings := {"defaults": {"models": ["*"], "pii_blocked": ["X"]}, "teams": {"t": {"models": ["m"]}}}
	t := lib.team with input.principal as {"team": "t"} with data.wardgate.policy as settings
	t == {"models": ["m"], "pii_blocked": ["X"]}
}

test_missing_settings_fall_back_to_empty if {
	t := lib.team with input.principal as {"team": "t"} with data.wardgate.policy as {}
	t == {}
	lib.model_allowed("anything") with input.principal as {"team": "t"} with data.wardgate.policy as {}
}

test_tool_denials_try_every_pattern_of_every_rule if {
	settings := {"tool_rules": [
		{"tools": ["shell", "shell_*", "exec_?"], "reason": "no shell"},
		{"tools": ["db.*", "[rw]ipe"], "reason": "no db"},
	]}
	names := ["shell", "shellx", "shell_", "exec_a", "exec_ab", "db.read.all", "wipe", "ripe", "pipe", "lookup"]
	reasons := lib.tool_denials([tool(name) | some name in names]) with input.principal as {} with data.wardgate.policy as settings
	denied := {name | some name in names; some reason in reasons; contains(reason, sprintf("'%s'", [name]))}
	denied == {"shell", "shell_", "exec_a", "db.read.all", "wipe", "ripe"}
}

test_tool_denials_with_patterns_that_cannot_be_alternatives if {
	settings := {"tool_rules": [{"tools": ["a,b", "x{1,2}", "lookup"], "reason": "odd"}]}
	reasons := lib.tool_denials([tool(n) | some n in ["a,b", "x1", "x2", "a", "lookup", "x"]]) with input.principal as {}
		with data.wardgate.policy as settings
	count(reasons) == 4
	data.wardgate.derived.tool_patterns_glob == "*" with data.wardgate.policy as settings
}

test_tool_denials_without_rules_deny_nothing if {
	count(lib.tool_denials([tool("shell")])) == 0 with data.wardgate.policy as {"tool_rules": []}
	count(lib.tool_denials([tool("shell")])) == 0 with data.wardgate.policy as {"tool_rules": [{"tools": []}]}
	count(lib.tool_denials([tool("shell")])) == 0 with data.wardgate.policy as {}
}

test_tool_denials_match_the_key_and_name_the_tool_as_spelled if {
	settings := {"tool_rules": [{"tools": ["Shell", "run_sql"], "reason": "no"}]}
	tools := [
		{"kind": "function", "name": "SHELL ", "name_key": "shell"},
		{"kind": "function", "name": "run_\u0455ql", "name_key": "run_sql"},
		{"kind": "function", "name": "shell", "name_key": "lookup"},
	]
	reasons := lib.tool_denials(tools) with input.principal as {} with data.wardgate.policy as settings
	reasons == {"tool 'SHELL ' is not allowed for this caller: no", "tool 'run_\u0455ql' is not allowed for this caller: no"}
}

test_tool_denials_by_kind_whatever_the_name if {
	settings := {"tool_rules": [{"kinds": ["Local_Shell", "computer_use"], "unless_roles": ["ops"], "reason": "built-in"}]}
	tools := [
		{"kind": "local_shell", "name": "local_shell_call", "name_key": "local_shell_call"},
		{"kind": "computer_use", "name": "my_screen", "name_key": "my_screen"},
		{"kind": "function", "name": "local_shell", "name_key": "local_shell"},
	]
	reasons := lib.tool_denials(tools) with input.principal as {"roles": []} with data.wardgate.policy as settings
	reasons == {
		"tool 'local_shell_call' (built-in local_shell) is not allowed for this caller: built-in",
		"tool 'my_screen' (built-in computer_use) is not allowed for this caller: built-in",
	}
	count(lib.tool_denials(tools)) == 0 with input.principal as {"roles": ["ops"]} with data.wardgate.policy as settings
}
