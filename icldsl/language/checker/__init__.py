"""Named passes over the IR that find every mistake before any LM call.

Each pass is `(module, sink) -> None` and reports through the sink; `check` runs them all
and raises one CheckError carrying every error found. The passes live by rule family
(models, lms, programs, training); each code's golden case is in tests/golden/errors/.
"""

from __future__ import annotations


from .. import ir
from ..diagnostics import CheckError, Sink
from ..options import EMBEDDING_NAME, LM_NAME, matches
from .common import dependencies, first, referenced, report_duplicates, type_names
from .lms import check_embeddings, check_lms
from .models import check_models
from .programs import check_programs, check_tools
from .training import check_data, check_trains


def check_duplicates(module: ir.Module, sink: Sink) -> None:
    for kind, what in ((ir.Model, "model"), (ir.LM, "lm"), (ir.Embedding, "embedding"), (ir.Tool, "tool"),
                       (ir.Program, "program"), (ir.Data, "data")):
        report_duplicates(module.of(kind), what + " `{}`", sink)
    for model in module.of(ir.Model):
        report_duplicates(model.fields, "field `{}` of model `" + model.name + "`", sink)
    for program in module.of(ir.Program):
        report_duplicates((*program.inputs, *program.steps), "step `{}` of program `" + program.name + "`", sink)


def check_unused(module: ir.Module, sink: Sink) -> None:
    """Warn of what nothing uses; a name an error already suggested (`using smal` -> did you mean
    `small`?) counts as used: the typo is the one mistake, said once."""
    typos = {d.fix.new for d in sink.diagnostics if d.code == "undefined-name" and d.fix is not None and d.fix.old}
    used: set[str] = set(typos)
    for model in module.of(ir.Model):
        used.update(n for f in model.fields for n in type_names(f.type))
    lms_used, tools_used, embeddings_used = set(typos), set(typos), set(typos)
    lms = first(module.of(ir.LM))
    for program in module.of(ir.Program):
        used.update(i.model.name for i in program.inputs)
        for step in program.lm_steps():
            used.add(step.model.name)
            tools_used.update(t.name for t in step.tools)
            if step.lm is not None:
                lms_used.add(step.lm.name)
            else:  # the only LM, or an ambiguity already reported as an error
                lms_used.update(lms)
        read = {name for item in program.steps for name in dependencies(item)}
        read.update(r.name for out in program.outputs for r in out.refs)
        for item in program.steps:
            if item.name not in read:
                sink.add("unused-name", f"step `{item.name}` is computed but never used", item.span, "unused",
                         "use it in a later step or the output, or remove it")
    for model in module.of(ir.Model):
        if model.name not in used:
            sink.add("unused-name", f"model `{model.name}` is never used", model.span, "unused",
                     "remove it, or use it in a program")
    lms_used.update(str(a.value) for lm in lms.values() for a in lm.options
                    if a.name == "fallback" and matches(a.value, LM_NAME))
    lms_used.update(referenced(module, LM_NAME))
    embeddings_used.update(referenced(module, EMBEDDING_NAME))
    for emb in module.of(ir.Embedding):
        if emb.name not in embeddings_used:
            sink.add("unused-name", f"embedding `{emb.name}` is never used", emb.span, "unused",
                     "remove it, or name it in a reward or optimizer (`embedding: " + emb.name + "`)")
    for lm in lms.values():
        if lm.name not in lms_used:
            sink.add("unused-name", f"lm `{lm.name}` is never used", lm.span, "unused",
                     f"remove it, or add `using {lm.name}` to a step")
    for tool in module.of(ir.Tool):
        if tool.name not in tools_used:
            sink.add("unused-name", f"tool `{tool.name}` is never used", tool.span, "unused",
                     "remove it, or add it to an agent step's `tools [...]`")


CHECKS = (check_duplicates, check_models, check_lms, check_embeddings, check_tools, check_programs, check_data, check_trains,
          check_unused)


def check(module: ir.Module) -> list:
    """Run every pass; raise CheckError if any error was found, else return the warnings."""
    sink = Sink()
    for check_pass in CHECKS:
        check_pass(module, sink)
    if sink.errors:
        raise CheckError(sink.diagnostics)
    return sink.diagnostics
