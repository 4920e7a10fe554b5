"""Where each name of a file is defined and used, and what to say about it on hover.

An `Index` is built from a module's IR: every definition (models and their fields, lms,
embeddings, tools, programs with their inputs and steps, data) and every place a name refers
to one, each with the span of the name alone. Functions a train or data block calls
(rewards, optimizers, loaders) and the options in calls and option blocks are indexed too,
for hover, with no definition in the file.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Iterator

from ..language import ir
from ..language.vocabulary import CONSTRAINTS
from ..language.catalogue.lms import EMBEDDERS, PROVIDERS, split_target
from ..language.catalogue.loaders import LOADERS
from ..language.formatter import type_text, value
from ..language.options import EMBEDDING_NAME, LM_NAME, Signature, type_name
from ..language.source import Source, Span
from ..language.catalogue.training import OPTIMIZERS, REWARDS

# Kinds of symbol; steps and inputs share a program's namespace ("value").
NAMESPACE = {"input": "value", "step": "value"}


@dataclass(frozen=True, slots=True)
class Symbol:
    """A defined name. `scope` is the program of an input or step and the model of a field;
    `span` is None for what the language provides (a reward, an option)."""

    kind: str
    name: str
    span: Span | None
    node: Any
    scope: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return NAMESPACE.get(self.kind, self.kind), self.scope, self.name


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A name in the file: where it is, the symbol it names, and whether it defines it."""

    span: Span
    symbol: Symbol
    definition: bool = False


def _name_span(span: Span, name: str, skip: int = 0) -> Span:
    """The span of `name` starting `skip` characters into `span` (on its line)."""
    return Span(span.file, span.start + skip, span.start + skip + len(name), span.line, span.column + skip)


def lm_signature(target: str) -> Signature | None:
    provider, _ = split_target(target)
    return PROVIDERS[provider].signature if provider in PROVIDERS else None


def embedding_signature(target: str) -> Signature | None:
    provider, _ = split_target(target)
    return EMBEDDERS[provider].signature if provider in EMBEDDERS else None


def function_signature(kind: str, func: str) -> tuple[Signature, str] | None:
    """The signature and description of reward, optimizer or loader `func`."""
    if kind == "loader" and func in LOADERS:
        return LOADERS[func].signature, LOADERS[func].doc
    registry = {"reward": REWARDS, "optimizer": OPTIMIZERS}.get(kind, {})
    if func in registry:
        function = registry[func]
        return function.signature, function.signature.doc
    return None


class Index:
    """Every definition and name occurrence of a module, looked up by offset in `source`."""

    def __init__(self, module: ir.Module, source: Source) -> None:
        self.source = source
        self.symbols: dict[tuple[str, str, str], Symbol] = {}
        self._found: list[Occurrence] = []
        self._models: dict[str, ir.Model] = {}
        for item in module.items:
            self._define_item(item)
        for item in module.items:
            self._visit_item(item)
        own = sorted((o for o in self._found if o.span.file == source.name), key=lambda o: o.span.start)
        self.occurrences = tuple(own)
        self._starts = [o.span.start for o in own]

    # ---- lookups
    def at(self, offset: int) -> Occurrence | None:
        """The occurrence whose name holds `offset` (or ends right at it)."""
        i = bisect.bisect_right(self._starts, offset) - 1
        if i >= 0 and offset <= self.occurrences[i].span.end:
            return self.occurrences[i]
        return None

    def references(self, symbol: Symbol) -> list[Occurrence]:
        """Every occurrence of `symbol` in this file, its definition included."""
        return [o for o in self.occurrences if o.symbol.key == symbol.key]

    def of_kind(self, *kinds: str, scope: str | None = None) -> list[Symbol]:
        return [s for s in self.symbols.values() if s.kind in kinds and (scope is None or s.scope == scope)
                and s.span is not None]

    def model(self, name: str | None) -> ir.Model | None:
        return self._models.get(name or "")

    def value_model(self, program: str, name: str) -> ir.Model | None:
        """The model a program's input or step yields."""
        symbol = self.symbols.get(("value", program, name))
        if symbol is None:
            return None
        node = symbol.node
        if isinstance(node, ir.Input):
            return self.model(node.model.name)
        if isinstance(node, ir.Branch):
            return self.model(node.arms[0].step.model.name) if node.arms else None
        return self.model(node.model.name)

    # ---- building
    def _define(self, kind: str, name: str, span: Span, node: Any, scope: str = "") -> None:
        symbol = Symbol(kind, name, span, node, scope)
        self.symbols.setdefault(symbol.key, symbol)
        self._found.append(Occurrence(span, self.symbols[symbol.key], True))

    def _use(self, kind: str, name: str, span: Span, scope: str = "") -> None:
        symbol = self.symbols.get((NAMESPACE.get(kind, kind), scope, name))
        if symbol is not None:
            self._found.append(Occurrence(span, symbol))

    def _builtin(self, kind: str, name: str, span: Span, node: Any, scope: str = "") -> None:
        """A name the language provides (a reward, an option): hover only."""
        self._found.append(Occurrence(span, Symbol(kind, name, None, node, scope)))

    def _define_item(self, item: ir.Item) -> None:
        kinds = {ir.Model: "model", ir.LM: "lm", ir.Embedding: "embedding", ir.Tool: "tool", ir.Program: "program",
                 ir.Data: "data"}
        if type(item) in kinds:
            self._define(kinds[type(item)], item.name, item.span, item)
        if isinstance(item, ir.Model):
            self._models.setdefault(item.name, item)
            for f in item.fields:
                self._define("field", f.name, f.span, f, item.name)
        elif isinstance(item, ir.Program):
            for inp in item.inputs:
                self._define("input", inp.name, inp.span, inp, item.name)
            for step in item.steps:
                self._define("step", step.name, step.span, step, item.name)

    def _visit_item(self, item: ir.Item) -> None:
        if isinstance(item, ir.Model):
            for f in item.fields:
                self._visit_type(f.type)
        elif isinstance(item, ir.LM):
            self._visit_options(item.options, lm_signature(item.target.value), f"lm `{item.name}`")
        elif isinstance(item, ir.Embedding):
            self._visit_options(item.options, embedding_signature(item.target.value), f"embedding `{item.name}`")
        elif isinstance(item, ir.Program):
            self._visit_program(item)
        elif isinstance(item, ir.Data):
            self._visit_call(item.loader, "loader")
        elif isinstance(item, ir.Train):
            self._use("program", item.program.name, item.program.span)
            self._use("data", item.data.name, item.data.span)
            for setting in item.settings:
                if setting.key in ("reward", "optimizer") and isinstance(setting.value, ir.Call):
                    self._visit_call(setting.value, setting.key)

    def _visit_type(self, t: ir.TypeExpr) -> None:
        for part in ir.type_parts(t):
            if isinstance(part, ir.NamedType):
                self._use("model", part.name, part.span)
            kind = ir.constraint_kind(part)
            if kind:
                self._visit_options(part.constraints, Signature(CONSTRAINTS.get(kind, {})), f"type `{kind}`")

    def _visit_options(self, args: tuple[ir.Arg, ...], signature: Signature | None, owner: str) -> None:
        """Option names (for hover), and the lms and embeddings option values name."""
        for arg in args:
            expected = signature.options.get(arg.name) if signature and arg.name else None
            if expected is not None:
                self._builtin("option", arg.name, _name_span(arg.span, arg.name), (signature, arg.name), owner)
            if isinstance(arg.value, ir.Ref) and expected in (LM_NAME, EMBEDDING_NAME):
                self._use("lm" if expected is LM_NAME else "embedding", arg.value.name, arg.value.span)

    def _visit_call(self, call: ir.Call, kind: str) -> None:
        found = function_signature(kind, call.func)
        if found is None:
            return
        self._builtin(kind, call.func, call.span, found)
        self._visit_options(call.args, found[0], f"{kind} `{call.func}`")

    def _visit_program(self, program: ir.Program) -> None:
        for inp in program.inputs:
            self._use("model", inp.model.name, inp.model.span)
        for item in program.steps:
            if isinstance(item, ir.Branch):
                self._visit_value(item.on, program)
                for arm in item.arms:
                    self._visit_step(arm.step, program)
            else:
                self._visit_step(item, program)
        for out in program.outputs:
            for ref in out.refs:
                self._visit_value(ref, program)

    def _visit_step(self, step: ir.Step, program: ir.Program) -> None:
        self._use("model", step.model.name, step.model.span)
        for ref in step.sources:
            self._visit_value(ref, program)
        if step.lm is not None:
            self._use("lm", step.lm.name, step.lm.span)
        for tool in step.tools:
            self._use("tool", tool.name, tool.span)

    def _visit_value(self, ref: ir.Ref, program: ir.Program) -> None:
        """`name` or `name.field`: the program's input or step, then a field of its model."""
        self._use("value", ref.name, _name_span(ref.span, ref.name), program.name)
        model = self.value_model(program.name, ref.name)
        if len(ref.path) == 2 and model is not None:
            skip = self.source.text.find(ref.path[1], ref.span.start + len(ref.name), ref.span.end) - ref.span.start
            if skip > 0:
                self._use("field", ref.path[1], _name_span(ref.span, ref.path[1], skip), model.name)


# ---- hover ---------------------------------------------------------------------------


def _code(text: str) -> str:
    return f"```icl\n{text}\n```"


def _field_line(f: ir.Field) -> str:
    return f"{f.name}: {type_text(f.type)}" + (f" {value(ir.Literal(f.description, f.span))}" if f.description else "")


def option_detail(signature: Signature, name: str) -> str:
    """An option as its declaration gives it: type (with its range), whether required, default, doc."""
    default = signature.defaults.get(name)
    text = type_name(signature.options[name]) + (" (required)" if name in signature.required else "")
    text += f", default `{default!r}`" if default is not None else ""
    doc = signature.docs.get(name)
    return f"{text}: {doc}" if doc else text


def _options_table(signature: Signature) -> Iterator[str]:
    for name in signature.options:
        yield f"- `{name}`: {option_detail(signature, name)}"


def hover(symbol: Symbol, index: Index) -> str:
    """Markdown about a symbol: its definition as written and what it means."""
    node = symbol.node
    if symbol.kind == "model":
        return _code("\n".join([f"model {node.name} {{", *(f"    {_field_line(f)}" for f in node.fields), "}"]))
    if symbol.kind == "field":
        parts = [_code(_field_line(node)), f"field of model `{symbol.scope}`"]
        return "\n\n".join(parts)
    if symbol.kind in ("lm", "embedding"):
        provider, model = split_target(node.target.value)
        options = ", ".join(f"{a.name}: {value(a.value)}" for a in node.options)
        lines = [_code(f"{symbol.kind} {node.name} = {value(node.target)}" + (f" {{ {options} }}" if options else ""))]
        if symbol.kind == "lm" and provider in PROVIDERS:
            lines.append(f"provider `{provider}`: {PROVIDERS[provider].doc}; model `{model}`")
            signature = lm_signature(node.target.value)
        else:
            lines.append(f"provider `{provider}`, model `{model}`")
            signature = embedding_signature(node.target.value)
        if signature is not None and signature.options:
            lines.append("options:\n" + "\n".join(_options_table(signature)))
        return "\n\n".join(lines)
    if symbol.kind == "tool":
        return _code(f"tool {node.name} = {value(node.impl)}") + "\n\nan agent step calls it"
    if symbol.kind == "program":
        outputs = ", ".join(str(r) for out in node.outputs for r in out.refs)
        inputs = ", ".join(f"{i.name}: {i.model.name}" for i in node.inputs)
        head = f"program {node.name}" + (f" {value(ir.Literal(node.description, node.span))}" if node.description else "")
        return _code(head) + f"\n\ninput `{inputs}`; output `{outputs}`"
    if symbol.kind == "input":
        return _code(f"input {node.name}: {node.model.name}") + f"\n\nthe input of program `{symbol.scope}`"
    if symbol.kind == "step":
        return _step_hover(node, symbol.scope)
    if symbol.kind == "data":
        return _code(f"data {node.name} = {value(node.loader)}")
    if symbol.kind in ("reward", "optimizer", "loader"):
        signature, doc = node
        lines = [_code(f"{symbol.kind} {symbol.name}(...)"), doc]
        if signature.options:
            lines.append("options:\n" + "\n".join(_options_table(signature)))
        return "\n\n".join(line for line in lines if line)
    if symbol.kind == "option":
        signature, name = node
        default = signature.defaults.get(name)
        text = f"option `{name}` of {symbol.scope}: {type_name(signature.options[name])}"
        text += f"; default `{default!r}`" if default is not None else ""
        return text + (f"\n\n{signature.docs[name]}" if name in signature.docs else "")
    return f"`{symbol.name}`"


def _step_line(step: ir.Step) -> str:
    parts = ["frozen"] if step.frozen else []
    parts += [step.kind, step.model.name, "from", " + ".join(str(s) for s in step.sources)]
    if step.lm is not None:
        parts += ["using", step.lm.name]
    if step.tools:
        parts.append("tools [" + ", ".join(t.name for t in step.tools) + "]")
    return " ".join(parts)


def _step_hover(node: ir.Step | ir.Branch, program: str) -> str:
    if isinstance(node, ir.Branch):
        arms = [f'    {value(ir.Literal(a.label, a.span)) if a.label is not None else "_"} => {_step_line(a.step)}'
                for a in node.arms]
        return _code("\n".join([f"{node.name} = branch {node.on} {{", *arms, "}"])) + \
            f"\n\na step of program `{program}`: only the arm matching `{node.on}` runs"
    lines = [_code(f"{node.name} = {_step_line(node)}"), f"a step of program `{program}`"
             + ("; frozen: training leaves it as it is" if node.frozen else "")]
    if node.instructions is not None:
        lines.append(f"instructions: {node.instructions.value}")
    return "\n\n".join(lines)
