"""The editor's preview of `icldsl render`: the exact messages each LM step of a program would
send for an input, built by the code `icldsl render` runs (runtime/render.py), without an LM."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Mapping

from ..language.compiler import compile_source
from ..language.diagnostics import CheckError, render_concise, sort_key
from ..errors import Error
from ..language.source import Source


def render_preview(source: Source, program: str | None = None, inputs: Mapping[str, Any] | None = None,
                   artifact: str | None = None) -> dict[str, Any]:
    """`{"program", "text", "steps": [{"path", "kind", "lm", "messages": [{"role", "content"}]}]}`,
    `text` being what `icldsl render` prints; `{"error": ...}` when the file does not compile or the
    input does not fit the program."""
    from ..runtime.render import render_program, render_text  # pydantic and the runtime: only when asked
    from ..training.session import program_of

    try:
        compiled = compile_source(source)
    except CheckError as exc:
        errors = sorted((d for d in exc.diagnostics if d.severity == "error"), key=sort_key)
        return {"error": "the file has errors:\n" + "\n".join(render_concise(d) for d in errors)}
    name = program or next(iter(compiled.programs), None)
    if name not in compiled.programs:
        known = ", ".join(compiled.programs) or "none"
        return {"error": f"no program `{name}` in the file (programs: {known})" if name else "the file has no program"}
    runnable = program_of(compiled, name)
    try:
        if artifact:
            from ..artifact import load

            trained = load(Path(source.name).parent / Path(artifact).expanduser())  # an absolute path stays
            if trained.spec.name != name:
                return {"error": f"{artifact} holds program `{trained.spec.name}`, not `{name}`"}
            runnable = runnable.with_states(trained.states)
        steps = asyncio.run(render_program(runnable, inputs))
    except Error as exc:  # an input that does not fit, an artifact that cannot be read
        return {"error": str(exc)}
    finally:
        asyncio.run(runnable.aclose())
    return {
        "program": name,
        "text": render_text(runnable, steps),
        "steps": [{"path": r.step.path, "kind": r.step.kind, "lm": r.step.lm, "note": r.note,
                   "retrieved": list(r.retrieved),
                   "messages": [{"role": m.role, "content": m.content} for m in r.messages]} for r in steps],
    }
