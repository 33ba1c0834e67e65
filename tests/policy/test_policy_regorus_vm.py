"""regorus' compiled VM: why it is off by default, and that the opt-in path works where it can.

The VM decides ~3x faster than regorus' interpreter, but in gordon-to-regorus 0.13 it goes on
with a rule body when an assignment's value is undefined. The first test pins that bug: when a
regorus upgrade fixes it, the test fails, and ``policy.regorus_vm`` can be considered again
(after running the decision suite with it on).
"""

from __future__ import annotations

import orjson
import regorus

from gateway.policy.config import PolicySettings
from gateway.policy.engines.embedded import RegorusEngine, build_regorus, compile_program

MODULE = """package t

allowed contains name if {
	some name in ["a", "b"]
	rule := data.rules[name]
	not rule.deny
}
"""
DATA = {"rules": {"a": {"deny": False}}}


def test_regorus_vm_goes_on_after_an_undefined_assignment_so_it_stays_off() -> None:
    interpreter = build_regorus({"t.rego": MODULE}, DATA)
    interpreter.set_input_json("{}")
    expected = orjson.loads(interpreter.eval_rule_as_json("data.t.allowed"))
    program, error = compile_program({"t.rego": MODULE}, orjson.dumps(DATA).decode(), ("data.t.allowed",))
    assert error is None and program is not None
    vm = regorus.Rvm()
    vm.load_program(regorus.Program.deserialize_binary(program)[0])
    vm.set_data_json(orjson.dumps(DATA).decode())
    vm.set_input_json("{}")
    got = orjson.loads(vm.execute_entry_point("data.t.allowed"))
    assert expected == ["a"]
    assert got != expected, (
        "regorus' VM no longer has the undefined-assignment bug: see PolicySettings.regorus_vm"
    )
    assert PolicySettings().regorus_vm is False


async def test_opt_in_vm_decides_and_falls_back_to_the_interpreter_when_it_cannot_compile() -> None:
    simple = 'package wardgate.request\n\ndecision := {"allow": input.ok == true, "deny": []}\n'
    engine = RegorusEngine(use_vm=True)
    await engine.load({"r.rego": simple}, {})
    assert engine.snapshot().uses_vm  # type: ignore[attr-defined]
    assert (await engine.evaluate("wardgate/request/decision", {"ok": True}))["allow"] is True
    unsupported = 'package wardgate.request\n\ndecision["allow"] := true\n'  # partial object rule
    await engine.load({"r.rego": unsupported}, {})
    assert not engine.snapshot().uses_vm  # type: ignore[attr-defined]
    assert engine.vm_error
    assert await engine.evaluate("wardgate/request/decision", {}) == {"allow": True}
    await engine.close()
