# Request-phase policy: decided after input redaction, before the call is forwarded.
#
# `decision` has the shape every Wardgate policy returns (docs/architecture.md); the gateway
# denies with every reason in `deny`, rewrites the model from `route`, caps max_tokens from
# `limits`, hands `require_approval` to the approval stage and `redact` to redaction.
package wardgate.request

decision := {
	"allow": count(reasons) == 0,
	"deny": reasons,
	"require_approval": require_approval,
	"redact": redact,
	"route": route,
	"limits": limits,
	"tags": tags,
	"capture": capture,
	"cache": cache,
} if {
	reasons := deny
}

# No request-phase approvals ship by default; add `require_approval contains {...} if` rules.
require_approval := set()

# Model allow-list per team (policy.yaml: teams.<team>.models, globs).
deny contains sprintf("model '%s' is not allowed for team '%s'", [input.request.model, data.wardgate.lib.team_name]) if {
	is_string(input.request.model)
	not data.wardgate.lib.model_allowed(input.request.model)
}

deny contains "the request names no model" if not is_string(input.request.model)

# Tools denied by name (its key) or glob, or by kind, unless the caller has one of the
# rule's roles: the model is never offered a tool the caller may not use.
deny contains reason if {
	some reason in data.wardgate.lib.tool_denials(input.request.tools)
}

# Requests carrying a sensitive data type the team may not send, even redacted.
deny contains sprintf("the request contains %v %s; team '%s' may not send this type of data", [n, entity, data.wardgate.lib.team_name]) if {
	some entity in object.get(data.wardgate.lib.team, "pii_blocked", [])
	n := input.pii.entities[entity]
	n > 0
}

# Prompt-injection markers in tool results: text a tool returned is data, not instructions.
# input.request.tool_results holds every tool output (chat tool and legacy function
# messages, responses *_output items, MCP outputs) as a key: all its text parts joined,
# look-alikes folded, invisible characters removed, whitespace runs one space. One regex of
# all markers rules a text out; only a text that matches is searched for each.
deny contains sprintf("possible prompt injection in the result of tool call '%s': contains '%s'", [id, marker]) if {
	some result in input.request.tool_results
	regex.match(data.wardgate.derived.injection_pattern, result.text)
	some marker in data.wardgate.derived.injection_markers
	contains(result.text, marker)
	id := data.wardgate.lib.result_label(result)
}

# Teams tagged for business hours may only call inside them (policy.yaml: business_hours).
deny contains sprintf("team '%s' may only call on %s between %v:00 and %v:00 UTC", [data.wardgate.lib.team_name, concat(", ", days), start, end]) if {
	data.wardgate.lib.business_hours_only
	not data.wardgate.lib.within_business_hours
	days := object.get(data.wardgate.derived.business_hours, "weekdays", [])
	start := object.get(data.wardgate.derived.business_hours, "start_hour", 0)
	end := object.get(data.wardgate.derived.business_hours, "end_hour", 24)
}

default redact := {}

redact := data.wardgate.lib.team.redact if is_object(data.wardgate.lib.team.redact)

# Route to a cheaper model when any remaining budget of the caller runs low.
default route := {}

route := {"model": cheaper} if {
	cheaper := data.wardgate.derived.routing.cheaper[input.request.model]
	is_object(input.cost.remaining_usd)
	remaining := [usd | some usd in input.cost.remaining_usd; is_number(usd)]
	count(remaining) > 0
	min(remaining) < data.wardgate.derived.routing.low_budget_usd
	data.wardgate.lib.model_allowed(cheaper)
}

# max_tokens cap per team (policy.yaml: teams.<team>.max_tokens).
default limits := {}

limits := {"max_tokens": cap} if {
	cap := data.wardgate.lib.team.max_tokens
	is_number(cap)
}

tags := {"team": data.wardgate.lib.team_name, "routed_from": input.request.model} if route.model

else := {"team": data.wardgate.lib.team_name}

# Content capture, opt-in: store the call's *redacted* messages and answer beside its audit
# event for the console's run explorer (policy.yaml: teams.<team>.capture: true, or the key
# id in capture_keys). The gateway still refuses it for a call that redaction did not cover.
default capture := false

capture if data.wardgate.lib.team.capture == true

capture if data.wardgate.derived.capture_keys[input.principal.key_id]

# Response cache (gateway/cache): an exact-match answer for a deterministic request
# (temperature 0 or a fixed seed), shared within the caller's team for an hour. A team's
# `cache` settings (policy.yaml) change it: `{mode: off}` turns it off, `scope: key` shares
# only within one virtual key, `scope: global` across teams (only for answers that are
# public anyway), `ttl_s` the lifetime, `always: true` caches its non-deterministic requests
# too (its agents accept a reused answer). `mode: semantic` also serves the answer of a
# similar question (same context, the last user turn at least `threshold` similar; off by
# default, see docs/architecture.md §10 for its risks). Anything else is never served from
# the cache.
default cache := {"mode": "off"}

cache := object.union({"mode": mode, "ttl_s": ttl, "scope": scope}, _cache_threshold) if {
	cacheable
	mode := object.get(_cache_settings, "mode", "exact")
	mode != "off"
	ttl := object.get(_cache_settings, "ttl_s", 3600)
	scope := object.get(_cache_settings, "scope", "team")
}

_cache_threshold := {"threshold": t} if {
	t := _cache_settings.threshold
	is_number(t)
} else := {}

cacheable if deterministic

# A team whose agents accept a reused answer for any request (`cache: {always: true}`).
cacheable if _cache_settings.always == true

deterministic if input.request.params.temperature == 0

deterministic if is_number(input.request.params.seed)

_cache_settings := settings if {
	settings := data.wardgate.lib.team.cache
	is_object(settings)
} else := {}
