# MCP policy: decided on what agents do through the MCP gateway (/mcp/{server}, docs/mcp.md),
# with the tool identity and the decision shape of the model-call phases, so one rule about
# `transfer_funds` holds whether a model proposes the call or an agent makes it.
#
# input.mcp: {server, method, stage,
#             tool: {name, name_key, kind: "mcp", arguments}     (tools/list, tools/call)
#             resource: {uri}                                    (resources/read)
#             prompt: {name, name_key, arguments}                (prompts/get)
#             result: {text}}                                    (stage "result")
# stage "list": may the tool (resource, prompt) be shown in tools/list (resources/list,
# prompts/list); no arguments, so only a deny hides it;
# stage "call": may the call go to the server (arguments parsed, numbers as in README "Numbers");
# stage "result": may the server's answer go back to the agent (its text as a key).
#
# Settings: policies/policy.yaml `mcp.servers.<server>` lists, by glob, the tools (name_key),
# resources (URI) and prompts (name_key) each server exposes; a server without an entry
# exposes nothing (fail closed). The tool rules, high_stakes and injection markers of
# policy.yaml apply to MCP calls as they do to model-proposed ones.
package wardgate.mcp

decision := {
	"allow": count(reasons) == 0,
	"deny": reasons,
	"require_approval": require_approval,
	"redact": {},
	"route": {},
	"limits": {},
	"tags": {},
} if {
	reasons := deny
}

server := input.mcp.server

# By path, not object.get on data.wardgate.policy: that would build the whole settings
# document on every decision (measured: 61 µs of a 164 µs result decision).
allow_list := data.wardgate.policy.mcp.servers[server]

# The allow lists as derived.mcp_servers serves them (lower-cased, exact names as keys): a
# listed name is one lookup; only the glob patterns are tried one by one.
_names := data.wardgate.derived.mcp_servers[server]

_listed if is_object(_names)

_tool_allowed if _names.tools.exact[tool.name_key] == true

_tool_allowed if {
	is_string(tool.name_key)
	some pattern in _names.tools.globs
	glob.match(pattern, null, tool.name_key)
}

_prompt_allowed if _names.prompts.exact[input.mcp.prompt.name_key] == true

_prompt_allowed if {
	is_string(input.mcp.prompt.name_key)
	some pattern in _names.prompts.globs
	glob.match(pattern, null, input.mcp.prompt.name_key)
}

_tools_method if input.mcp.method in {"tools/list", "tools/call"}

tool := input.mcp.tool

deny contains sprintf("MCP server '%s' has no entry under mcp.servers in policy.yaml", [server]) if {
	not _listed
}

# Each stage evaluates only its own reasons: the stage is tested once here, not by every rule
# (measured, regorus: each rule a decision reaches costs tens of thousands of instructions,
# even one whose first test fails).
deny contains reason if {
	input.mcp.stage != "result"
	some reason in _before
}

deny contains reason if {
	input.mcp.stage == "result"
	some reason in _after
}

_before contains sprintf("tool '%s' is not on the allow list of MCP server '%s'", [tool.name, server]) if {
	_tools_method
	_listed
	not _tool_allowed
}

# The tool rules of policy.yaml (by name_key, and kind "mcp" for every MCP tool).
_before contains reason if {
	_tools_method
	some reason in data.wardgate.lib.tool_denials([tool])
}

_rule := data.wardgate.derived.high_stakes[tool.name_key] if {
	_tools_method
	input.mcp.stage != "result"
	is_string(tool.name_key)
}

_before contains sprintf("tool '%s' is never allowed: %s", [tool.name, why]) if {
	is_object(_rule)
	_rule.deny == true
	why := object.get(_rule, "reason", "high-stakes tool")
}

# Above the threshold (or with the argument missing or not a number) a human decides; the
# absolute value counts, as for model-proposed calls.
require_approval contains {
	"reason": sprintf("%s: %s=%s needs approval above %v", [why, key, data.wardgate.response._shown(value), limit]),
	"tool_call_id": object.get(input.mcp, "call_id", ""),
	"approvers": object.get(_rule, "approvers", []),
	"ttl_s": object.get(_rule, "ttl_s", data.wardgate.derived.approval_ttl_s),
} if {
	input.mcp.stage == "call"
	is_object(_rule)
	not _rule.deny
	key := object.get(_rule, "argument", "")
	limit := object.get(_rule, "above", 0)
	value := data.wardgate.lib.argument(tool.arguments, key)
	not _within_threshold(value, limit)
	why := object.get(_rule, "reason", sprintf("high-stakes tool '%s'", [tool.name]))
}

_within_threshold(value, limit) if abs(data.wardgate.lib.number(value)) <= limit

_before contains sprintf("resource '%s' is not on the allow list of MCP server '%s'", [uri, server]) if {
	input.mcp.method in {"resources/read", "resources/list"}
	_listed
	uri := input.mcp.resource.uri
	not _uri_allowed(uri)
}

# A resource pattern is an exact URI or a prefix ending in `*` (`kb://*` covers every article
# whatever its path): no glob, whose delimiters the engines read differently for URIs.
_uri_allowed(uri) if {
	is_string(uri)
	some pattern in object.get(allow_list, "resources", [])
	_uri_matches(pattern, uri)
}

_uri_matches(pattern, uri) if pattern == uri

_uri_matches(pattern, uri) if {
	is_string(pattern)
	endswith(pattern, "*")
	startswith(uri, trim_suffix(pattern, "*"))
}

_before contains sprintf("prompt '%s' is not on the allow list of MCP server '%s'", [input.mcp.prompt.name, server]) if {
	input.mcp.method in {"prompts/get", "prompts/list"}
	_listed
	not _prompt_allowed
}

# What a server returns is data, not instructions: the injection markers of policy.yaml.
_after contains sprintf("possible prompt injection in the answer of MCP server '%s': contains '%s'", [server, marker]) if {
	text := input.mcp.result.text
	is_string(text)
	regex.match(data.wardgate.derived.injection_pattern, text)
	some marker in data.wardgate.derived.injection_markers
	contains(text, marker)
}
