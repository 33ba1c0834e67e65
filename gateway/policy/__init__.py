"""Policy: Rego decisions on every request and every answer (docs/architecture.md).

    config.py     PolicySettings: the ``policy`` section
    source.py     rego/ + policies/ → PolicySet (modules, tests, data, revision)
    dataschema.py the keys of policy.yaml the shipped Rego reads: a typo refuses the set
    engines/      PolicyEngine: regorus (embedded default), opa (REST), opa-lib (OPA in process)
    errors.py     the engines' errors;  regorus_build.py  regorus engines built on this thread
    derived.py    the wardgate.derived package, evaluated once per revision and served as data
    testing.py    compile checks and test_* rules under regorus and opa-lib
    reload.py     PolicyManager: check, swap atomically, keep the last good set; file watcher
    input.py      the input document (input.version 1) from a Call
    numbers.py    tool-call arguments parsed once, numbers in the one form both engines compare
    textkey.py    keys of tool names and texts: what a rule compares instead of the raw spelling
    answer.py     the response part: answers and streams → content, tool calls, usage
    decision.py   the decision document, checked and normalised
    mcpfast.py    the plain wardgate.mcp allow answered from the served data (shipped rules only)
    service.py    one snapshot per call, one decision per phase, failures → fail closed/open
    effects.py    deny, approval hand-off, route, token cap, redaction
    stage.py      PolicyRequestStage / PolicyResponseStage (stream.py: the stream gate)
    metrics.py    Prometheus metrics on the app's registry
    component.py  Policy: the component;  api.py  admin routes;  cli.py  wardgate policy …

``gateway.settings`` imports only ``component.py`` (which imports ``config.py``) at module
level, so the native engines load only when the policy component starts.
"""
