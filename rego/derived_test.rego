# Tests of the values derived from the settings (derived.rego), with their own settings.
package wardgate.derived_test

import data.wardgate.derived

settings := {
	"defaults": {"models": ["*"], "pii_blocked": ["X"]},
	"teams": {"t": {"models": ["m"]}},
	"tool_rules": [{"tools": ["shell", "exec_*", "db.?x", "[rw]ipe", "*_Admin"]}, {"kinds": ["Local_Shell"]}],
	"injection": {"markers": ["Ignore previous", "<|im_start|>", "[system]", "a.b (c)+?", "ignore  PREVIOUS", " ignore\tprevious\n"]},
	"high_stakes": {"Transfer_Funds": {"deny": true}},
}

test_teams_are_merged_over_the_defaults if {
	derived.teams == {"t": {"models": ["m"], "pii_blocked": ["X"]}} with data.wardgate.policy as settings
	derived.defaults == {"models": ["*"], "pii_blocked": ["X"]} with data.wardgate.policy as settings
}

test_tool_prefixes_stop_at_the_first_glob_character if {
	derived.tool_prefixes == ["shell", "exec_", "db.", "", ""] with data.wardgate.policy as settings
}

test_tool_rules_and_high_stakes_are_keyed if {
	rules := derived.tool_rules with data.wardgate.policy as settings
	rules[0].tools == ["shell", "exec_*", "db.?x", "[rw]ipe", "*_admin"]
	rules[1].kinds == ["local_shell"]
	derived.kind_rules == {"local_shell": [{"tools": [], "kinds": ["local_shell"]}]} with data.wardgate.policy as settings
	derived.high_stakes == {"transfer_funds": {"deny": true}} with data.wardgate.policy as settings
}

test_injection_markers_are_keys_once_each if {
	derived.injection_markers == ["<|im_start|>", "[system]", "a.b (c)+?", "ignore previous"] with data.wardgate.policy as settings
}

test_injection_pattern_matches_markers_literally if {
	pattern := derived.injection_pattern with data.wardgate.policy as settings
	regex.match(pattern, "x <|im_start|> y")
	regex.match(pattern, "see [system] now")
	regex.match(pattern, "a.b (c)+? d")
	not regex.match(pattern, "s")
	not regex.match(pattern, "axb (c)")
	not regex.match(pattern, "ignore")
}

test_no_markers_no_pattern if {
	not derived.injection_pattern with data.wardgate.policy as {}
	derived.injection_markers == [] with data.wardgate.policy as {}
}
