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

test_number_reads_numbers_and_numeric_strings if {
	lib.number(12) == 12
	lib.number("12.5") == 12.5
	not lib.number("12 dollars")
	not lib.number(null)
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
	reasons := lib.tool_denials(["shell", "lookup", "db_read", 7]) with input.principal as {"roles": ["dev"]}
		with data.wardgate.policy as settings
	reasons == {"tool 'shell' is not allowed for this caller: ops only", "tool 'db_read' is not allowed for this caller: no db"}
}

test_tool_denials_respect_unless_roles if {
	settings := {"tool_rules": [{"tools": ["shell*"], "unless_roles": ["ops"]}]}
	reasons := lib.tool_denials(["shell"]) with input.principal as {"roles": ["ops"]} with data.wardgate.policy as settings
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
	reasons := lib.tool_denials(names) with input.principal as {} with data.wardgate.policy as settings
	denied := {name | some name in names; some reason in reasons; contains(reason, sprintf("'%s'", [name]))}
	denied == {"shell", "shell_", "exec_a", "db.read.all", "wipe", "ripe"}
}

test_tool_denials_with_patterns_that_cannot_be_alternatives if {
	settings := {"tool_rules": [{"tools": ["a,b", "x{1,2}", "lookup"], "reason": "odd"}]}
	reasons := lib.tool_denials(["a,b", "x1", "x2", "a", "lookup", "x"]) with input.principal as {}
		with data.wardgate.policy as settings
	count(reasons) == 4
	data.wardgate.derived.tool_patterns_glob == "*" with data.wardgate.policy as settings
}

test_tool_denials_without_rules_deny_nothing if {
	count(lib.tool_denials(["shell"])) == 0 with data.wardgate.policy as {"tool_rules": []}
	count(lib.tool_denials(["shell"])) == 0 with data.wardgate.policy as {"tool_rules": [{"tools": []}]}
	count(lib.tool_denials(["shell"])) == 0 with data.wardgate.policy as {}
}
