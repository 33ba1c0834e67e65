"""``wardgate policy …``: test, evaluate and push policies from the command line.

wardgate policy test [rego/] [--data policies/]        every test_* rule, regorus AND opa-lib
wardgate policy eval --phase request --input in.json    the decision for one input document
wardgate policy push --opa http://opa:8181              upload rego/ and the data to an OPA server
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson
import typer

from gateway.policy.source import PolicySet, PolicySourceError, load_policy_set
from gateway.policy.testing import ENGINES, check

app = typer.Typer(help="Rego policies: test, evaluate, push.", no_args_is_help=True)

_DATA = typer.Option(Path("policies"), "--data", help="Directory of YAML/JSON data (data.wardgate.<file>).")
_REGO = typer.Option(Path("rego"), "--rego", help="Directory of Rego modules.")


def _load(rego: Path, data: Path) -> PolicySet:
    try:
        return load_policy_set(rego, data)
    except PolicySourceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command("test")
def test_command(
    directory: Path = typer.Argument(Path("rego"), help="Directory of Rego modules and *_test.rego."),
    data: Path = _DATA,
    engine: list[str] = typer.Option(list(ENGINES), "--engine", "-e", help="regorus and/or opa-lib."),
    verbose: bool = typer.Option(True, "--verbose/--quiet", "-v/-q", help="One line per test."),
) -> None:
    """Run every test_* rule under each engine; exit 1 on any failure or compile error."""
    unknown = [e for e in engine if e not in ENGINES]
    if unknown:
        typer.echo(f"error: unknown engine(s) {unknown}; choose from {list(ENGINES)}", err=True)
        raise typer.Exit(2)
    policy_set = _load(directory, data)
    report = check(policy_set, engines=engine)
    for error in report.compile_errors:
        typer.echo(f"ERROR {error.engine:<8} {error}")
    for r in report.results:
        if verbose or not r.passed:
            mark = "PASS " if r.passed else "FAIL "
            line = f"{mark} {r.engine:<8} {r.case.location:<32} {r.case.package}.{r.case.name}"
            if r.error:
                line += f"\n        {r.error}"
            typer.echo(line)
    summary = report.summary()
    typer.echo(
        f"{summary['passed']}/{summary['tests']} passed under {', '.join(engine)}"
        + (f"; {len(report.compile_errors)} compile error(s)" if report.compile_errors else "")
    )
    if not report.results and not report.compile_errors:
        typer.echo("warning: no test_* rules found", err=True)
    raise typer.Exit(0 if report.ok else 1)


@app.command("eval")
def eval_command(
    phase: str = typer.Option("request", "--phase", help="request or response."),
    input_file: Path = typer.Option(..., "--input", "-i", help="Input document (JSON); '-' reads stdin."),
    rego: Path = _REGO,
    data: Path = _DATA,
    engine: str = typer.Option("regorus", "--engine", "-e", help="regorus or opa-lib."),
    raw: bool = typer.Option(False, "--raw", help="Print the policy's document as it is, not normalised."),
) -> None:
    """Print the decision the policy gives for one input document."""
    if phase not in ("request", "response"):
        typer.echo("error: --phase is request or response", err=True)
        raise typer.Exit(2)
    try:
        text = sys.stdin.buffer.read() if str(input_file) == "-" else input_file.read_bytes()
        doc = orjson.loads(text)
    except (OSError, orjson.JSONDecodeError) as exc:
        typer.echo(f"error: cannot read the input document: {exc}", err=True)
        raise typer.Exit(2) from exc
    policy_set = _load(rego, data)
    typer.echo(
        orjson.dumps(_evaluate(policy_set, engine, phase, doc, raw), option=orjson.OPT_INDENT_2).decode()
    )


def _evaluate(policy_set: PolicySet, engine: str, phase: str, doc: Any, raw: bool) -> Any:
    from gateway.policy.decision import PolicyDecision
    from gateway.policy.errors import PolicyError

    path = f"wardgate/{phase}/decision"
    try:
        if engine == "regorus":
            from gateway.policy.engines.embedded import RegorusEngine

            eng: Any = RegorusEngine()
        elif engine == "opa-lib":
            from gateway.policy.engines.opa_lib import OpaLibEngine

            eng = OpaLibEngine()
        else:
            typer.echo(f"error: unknown engine {engine!r}", err=True)
            raise typer.Exit(2)

        async def run() -> Any:
            try:
                await eng.load(policy_set.modules, policy_set.data, revision=policy_set.revision)
                return await eng.evaluate(path, doc)
            finally:
                await eng.close()

        value = asyncio.run(run())
        if raw:
            return value
        decision = PolicyDecision.from_result(value)
        return {"outcome": decision.outcome, "revision": policy_set.revision, "decision": decision.to_dict()}
    except PolicyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command("push")
def push_command(
    opa: str = typer.Option(..., "--opa", help="OPA server URL, e.g. http://127.0.0.1:8181."),
    rego: Path = _REGO,
    data: Path = _DATA,
    run_tests: bool = typer.Option(True, "--test/--no-test", help="Refuse to push a set whose tests fail."),
) -> None:
    """Upload the Rego modules (ids wardgate/<path>) and data.wardgate to an OPA server."""
    from gateway.policy.derived import materialize
    from gateway.policy.engines.opa_http import admin_client, push_policies
    from gateway.policy.errors import PolicyError

    policy_set = _load(rego, data)
    report = check(policy_set, engines=("opa-lib",), run_tests=run_tests)
    if not report.ok:
        for line in report.errors():
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(1)

    async def run() -> None:
        try:
            async with admin_client(opa) as client:
                await push_policies(client, *materialize(policy_set.modules, policy_set.data))
        except PolicyError:
            raise
        except Exception as exc:  # the client raises its own types for each HTTP failure
            raise PolicyError(f"push to {opa} failed: {exc!r}") from exc

    try:
        asyncio.run(run())
    except PolicyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"pushed revision {policy_set.revision}: {len(policy_set.modules)} modules, "
        f"data from {', '.join(policy_set.data_files) or 'no files'} to {opa}"
    )
