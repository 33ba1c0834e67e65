# Values derived from the settings alone (policies/*.yaml), never from the input.
#
# The gateway evaluates this package once per policy revision and serves its value as plain
# data at data.wardgate.derived (the module itself leaves the serving set; see README.md,
# "Derived data"), so the rules that run on every call read constants instead of
# recomputing them: each team's merged settings, the injection markers and tool patterns as
# keys (lower-cased, whitespace collapsed: the form of the input's name_key and tool result
# text) and one regex of the markers, the literal prefixes of the tool rules. In `wardgate policy test` and
# under a `with data.wardgate.policy as ...` the package is evaluated as ordinary Rego, so
# tests see values derived from their own settings.
#
# Rules here may read data.wardgate.<data file> (and this package) only: not input, not
# other packages, no sets in the value (served as JSON) — checked when a revision loads.
package wardgate.derived

default config := {}

config := data.wardgate.policy

defaults := object.get(config, "defaults", {})

# Key ids whose calls are captured whatever their team (an object: no sets in served data).
capture_keys := {key: true | some key in object.get(config, "capture_keys", [])}

# Every team's settings: its entry over the defaults, key by key (data.wardgate.lib.team
# picks the caller's, or `defaults` for a team without an entry).
teams := {name: object.union(defaults, settings) | some name, settings in object.get(config, "teams", {})}

# The tool rules with their name patterns as keys (lower-cased: tools are matched by their
# name_key) and their `kinds` (built-in tool kinds they cover, any name) as a list.
tool_rules := [object.union(rule, {
	"tools": [lower(pattern) | some pattern in object.get(rule, "tools", []); is_string(pattern)],
	"kinds": [lower(kind) | some kind in object.get(rule, "kinds", []); is_string(kind)],
}) |
	some rule in object.get(config, "tool_rules", [])
	is_object(rule)
]

# Kind -> the rules that name it: one lookup per tool instead of a loop over every rule.
kind_rules := {kind: [named | some named in tool_rules; kind in named.kinds] |
	some rule in tool_rules
	some kind in rule.kinds
}

_tool_patterns := [pattern |
	some rule in tool_rules
	some pattern in rule.tools
]

# The literal start of every tool pattern (up to its first glob character). A name that
# starts with none of them matches no pattern: one strings.any_prefix_match per tool name
# rules out most names before any glob.match runs.
tool_prefixes := [regex.replace(pattern, `(?s)[*?\[\]{},!\\].*`, "") | some pattern in _tool_patterns]

# Every pattern of every tool rule as one glob, "{a,b*,...}", the second test of a name that
# passed the prefixes. When a pattern cannot be one of the alternatives (it holds `,{}\`) or
# there is none, the glob is "*": every such name goes through the rules.
tool_patterns_glob := sprintf("{%s}", [concat(",", _tool_patterns)]) if {
	count(_tool_patterns) > 0
	not regex.match(`[,{}\\]`, concat("", _tool_patterns))
} else := "*"

# High-stakes tools by key (lower-cased name), the form of a tool call's name_key.
high_stakes := {lower(name): rule | some name, rule in object.get(config, "high_stakes", {})}

default approval_ttl_s := 3600

approval_ttl_s := config.approval_ttl_s if is_number(config.approval_ttl_s)

# Prompt-injection markers as keys (lower-cased, whitespace runs one space: the form of a
# tool result's text in the input), sorted.
injection_markers := sort({key |
	some marker in object.get(config, ["injection", "markers"], [])
	is_string(marker)
	key := trim_space(regex.replace(lower(marker), `\s+`, " "))
	key != ""
})

# One regex matching any marker as a literal: a text matches it exactly when it contains a
# marker, and one regex.match costs far less than one `contains` per marker.
injection_pattern := concat("|", [regex.replace(marker, `[\\.+*?()|\[\]{}^$]`, `\$0`) |
	some marker in injection_markers
]) if count(injection_markers) > 0

routing := object.get(config, "routing", {})

business_hours := object.get(config, "business_hours", {})

# The MCP servers' allow lists (mcp.servers in policy.yaml) in the form wardgate.mcp reads on
# every call: per server and kind (tools, prompts), the patterns lower-cased (the form of a
# name_key); those without a glob character as keys (one lookup decides most calls, no
# glob.match), the rest as globs. Measured (regorus): the allow-list test was ~120 µs of a
# ~210 µs tools/call decision when it lower-cased and glob-matched every pattern per call.
mcp_servers := {name: {kind: {"exact": exact, "globs": globs} |
	some kind in ["tools", "prompts"]
	lowered := [lower(p) | some p in object.get(server, kind, []); is_string(p)]
	exact := {p: true | some p in lowered; not regex.match(`[*?\[\]{}!\\]`, p)}
	globs := [p | some p in lowered; regex.match(`[*?\[\]{}!\\]`, p)]
} |
	some name, server in object.get(config, ["mcp", "servers"], {})
	is_object(server)
}
